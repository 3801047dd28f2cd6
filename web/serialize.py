"""The JSON shapes of the public API, in one place."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kb.models import Suggestion, SuggestionResult


def result_url(result: SuggestionResult) -> str:
    """The page of a result: /articles/<id> or /incidents/<id>, the id percent-encoded."""
    folder = "articles" if result.kind == "article" else "incidents"
    return f"/{folder}/{quote(result.id, safe='')}"


def result_json(result: SuggestionResult) -> dict[str, Any]:
    return {
        "rank": result.rank,
        "kind": result.kind,
        "id": result.id,
        "title": result.title,
        "resolution": result.resolution,
        "resolution_code": result.resolution_code,
        "snippet": result.snippet,
        "score": result.score,
        "url": result_url(result),
        "product": result.product,
        "category": result.category,
        "status": result.status,
        "validated_at": result.validated_at or None,
        "matched_terms": result.matched_terms,
        "similar_count": result.similar_count,
        "similar_incidents": result.similar_incidents,
    }


def suggestion_json(suggestion: Suggestion) -> dict[str, Any]:
    return {
        "suggestion_id": suggestion.id,
        "no_good_match": suggestion.no_good_match,
        "confidence": suggestion.confidence,
        "truncated": suggestion.truncated,
        "triage": suggestion.triage,
        "language": suggestion.language or None,
        "results": [result_json(r) for r in suggestion.results],
    }
