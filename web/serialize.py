"""The JSON shapes of the public API, in one place."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kb.app.outcomes import resolution_note
from kb.models import Suggestion, SuggestionResult


def result_url(result: SuggestionResult) -> str:
    """The page of a result: /articles/<id> or /incidents/<id>, the id percent-encoded."""
    folder = "articles" if result.kind == "article" else "incidents"
    return f"/{folder}/{quote(result.id, safe='')}"


def public_base_url() -> str:
    """Where agents open the service: KB_PUBLIC_URL, else the address this request came in on."""
    from flask import current_app, request

    return current_app.config["KB_CONFIG"].public_url.strip() or request.url_root


def result_json(result: SuggestionResult, base_url: str = "") -> dict[str, Any]:
    return {
        "rank": result.rank,
        "kind": result.kind,
        "id": result.id,
        "title": result.title,
        "resolution": result.resolution,
        "resolution_code": result.resolution_code,
        "snippet": result.snippet,
        "score": result.score,
        "confidence": result.confidence,
        "confidence_band": result.confidence_band or None,
        "url": result_url(result),
        "product": result.product,
        "category": result.category,
        "status": result.status,
        "validated_at": result.validated_at or None,
        "matched_terms": result.matched_terms,
        "similar_count": result.similar_count,
        "similar_incidents": result.similar_incidents,
        "resolution_note": resolution_note(
            result.kind,
            result.id,
            result.title,
            result.fix_text(),
            base_url.rstrip("/") + result_url(result),
        ),
        "family": result.family or None,
        "own_resolution": result.own_resolution or None,
        "steps": [
            dict(
                s,
                incident_urls=[
                    f"/incidents/{quote(i, safe='')}" for i in s.get("incident_ids", [])
                ],
            )
            for s in result.steps
        ],
    }


def suggestion_json(suggestion: Suggestion, base_url: str = "") -> dict[str, Any]:
    return {
        "suggestion_id": suggestion.id,
        "no_good_match": suggestion.no_good_match,
        "confidence": suggestion.confidence,
        "answerable_probability": suggestion.p_answerable,
        "calibrated_for": suggestion.calibrated_for,
        "truncated": suggestion.truncated,
        "triage": suggestion.triage,
        "language": suggestion.language or None,
        "results": [result_json(r, base_url) for r in suggestion.results],
    }
