"""The JSON API under /api/v1 (see ../DESIGN contract and /api/v1/openapi.json)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from kb.app.outcomes import record_choice
from kb.app.requests import Filters, SuggestRequest, Viewer
from kb.errors import AuthError, IndexMissingError, NotFoundError, ValidationError
from kb.importers import incident_from_record
from kb.models import EVERYONE, MANAGERS, OUTCOMES, WRITERS
from web.auth import current_principal, require_roles, service, store
from web.openapi import openapi_document
from web.serialize import public_base_url, suggestion_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")

MAX_INCIDENTS_PER_REQUEST = 1000
MAX_TEXT_FIELD = 100_000


def json_body() -> Any:
    """The request's JSON body, whatever its content type says. Raises ValidationError."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise ValidationError("the request body is empty; send a JSON object")
    try:
        data = json.loads(raw)
        # "\ud800" on its own parses, but is no text: SQLite could not store it.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("the request body is not UTF-8 text") from None
    except UnicodeEncodeError:
        raise ValidationError("the request body contains an unpaired surrogate escape") from None
    except (ValueError, RecursionError):
        # ValueError also covers numbers too long to convert (Python's digit limit).
        raise ValidationError("the request body is not valid JSON") from None
    return data


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object")
    return value


def _string(data: dict, name: str, *, limit: int = MAX_TEXT_FIELD) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"'{name}' must be a string")
    if len(value) > limit:
        raise ValidationError(f"'{name}' is longer than {limit} characters")
    return value


def parse_suggest_request(data: Any) -> SuggestRequest:
    data = _object(data, "the request body")
    config = current_app.config["KB_CONFIG"]
    title, description = _string(data, "title"), _string(data, "description")
    incident_ref = _string(data, "incident_id", limit=200)
    customer_tier = _string(data, "customer_tier", limit=200)
    if not (title.strip() or description.strip()) and incident_ref:
        # Ask only once: an incident the store already holds is searched by its id.
        try:
            stored = service().stored_incident(incident_ref)
        except NotFoundError:
            raise NotFoundError(
                f"no incident {incident_ref!r} is stored: send its 'title' or 'description'"
            ) from None
        title, description = stored.title, stored.description
        customer_tier = customer_tier or stored.customer_tier
    if not (title.strip() or description.strip()):
        raise ValidationError("describe the incident: 'title' or 'description' must not be empty")
    k = data.get("k", config.default_k)
    if isinstance(k, float) and k.is_integer():
        k = int(k)  # JSON Schema counts 5.0 as an integer
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= config.max_k:
        raise ValidationError(f"'k' must be an integer from 1 to {config.max_k}")
    filters = _object({} if data.get("filters") is None else data["filters"], "'filters'")
    product = _string(filters, "product", limit=200)
    category = _string(filters, "category", limit=200)
    audience = _string(data, "audience", limit=20) or "internal"
    if audience not in ("internal", "public"):
        raise ValidationError("'audience' must be 'internal' or 'public'")
    if not isinstance(data.get("include_drafts", False), bool):
        raise ValidationError("'include_drafts' must be true or false")
    if not isinstance(data.get("preview", False), bool):
        raise ValidationError("'preview' must be true or false")
    principal = current_principal()
    include_drafts = bool(data.get("include_drafts")) and principal.role in MANAGERS
    return SuggestRequest(
        preview=bool(data.get("preview")),
        title=title,
        description=description,
        k=k,
        incident_ref=incident_ref,
        filters=Filters(product=product, category=category),
        viewer=Viewer(include_drafts=include_drafts, audience=audience),
        customer_tier=customer_tier,
    )


@bp.post("/suggest")
@require_roles(*EVERYONE)
def suggest():
    req = parse_suggest_request(json_body())
    principal = current_principal()
    suggestion = service().suggest(req, caller=principal.name)
    return jsonify(suggestion_json(suggestion, base_url=public_base_url()))


@bp.post("/suggestions/<suggestion_id>/feedback")
@require_roles(*EVERYONE)
def feedback(suggestion_id: str):
    data = _object(json_body(), "the request body")
    used = data.get("used")
    if used is not None and (not isinstance(used, str) or not used or len(used) > 200):
        raise ValidationError("'used' must be the id of a result, or null")
    outcome = data.get("outcome") or ("used" if used else None)
    if outcome not in OUTCOMES:
        raise ValidationError("'outcome' must be 'used' or 'none_helped'")
    principal = current_principal()
    agent = (
        principal.name
        if principal.via == "session"
        else (_string(data, "agent", limit=200) or principal.name)
    )
    record, note = record_choice(
        service(),
        store(),
        suggestion_id,
        outcome=outcome,
        used_id=used,
        agent=agent,
        base_url=public_base_url(),
        caller=principal.name,
    )
    return jsonify({**record.to_dict(), "resolution_note": note}), 201


@bp.post("/suggestions/<suggestion_id>/settle")
@require_roles(*EVERYONE)
def settle(suggestion_id: str):
    """Record a search asked with "preview": true (the agent acted on it, or stopped typing).
    Only whoever asked may; again is a no-op."""
    if not store().settle_suggestion(suggestion_id[:100], principal=current_principal().name):
        raise NotFoundError(
            f"no search {suggestion_id!r} of yours to record (previews are kept an hour)"
        )
    return jsonify({"suggestion_id": suggestion_id, "recorded": True})


@bp.post("/articles/<article_id>/flags")
@require_roles(*EVERYONE)
def flag_article(article_id: str):
    """An agent flags an article met in a result: wrong, outdated or unclear, with a note."""
    from kb.models import SEARCHABLE_ARTICLE_STATES

    data = _object(json_body(), "the request body")
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise ValidationError("'kind' must be one of wrong, outdated, unclear")
    note = _string(data, "note", limit=2000)
    principal = current_principal()
    agent = (
        principal.name
        if principal.via == "session"
        else (_string(data, "agent", limit=200) or principal.name)
    )
    article = store().get_article(article_id)
    if article.status not in SEARCHABLE_ARTICLE_STATES and principal.role not in MANAGERS:
        raise NotFoundError(f"no article with id {article_id!r}")
    flag_id = store().flag_article(article_id, kind, note, agent=agent)
    open_flags = len(store().article_flags(article_id))
    return jsonify(
        {
            "id": flag_id,
            "article_id": article_id,
            "kind": kind,
            "agent": agent,
            "open_flags": open_flags,
        }
    ), 201


@bp.post("/incidents")
@require_roles(*WRITERS)
def upsert_incidents():
    data = json_body()
    records = data if isinstance(data, list) else [data]
    if not records:
        raise ValidationError("send one incident object or a non-empty list of them")
    if len(records) > MAX_INCIDENTS_PER_REQUEST:
        raise ValidationError(f"send at most {MAX_INCIDENTS_PER_REQUEST} incidents per request")
    incidents = [
        incident_from_record(r, source="item", line=n) for n, r in enumerate(records, start=1)
    ]
    ids = [i.id for i in incidents]
    if len(set(ids)) != len(ids):
        raise ValidationError("the same incident id appears twice in the request")
    counts = service().upsert_incidents(incidents, source="api")
    return jsonify({"upserted": len(incidents), "ids": ids, **counts.as_dict()}), 201


@bp.delete("/incidents/<incident_id>")
@require_roles("admin")
def erase_incident(incident_id: str):
    """Erase one incident everywhere (kb.app.privacy.erase_incidents); admins only."""
    from kb.app.privacy import erase_incidents

    principal = current_principal()
    report = erase_incidents(service(), [incident_id], actor=f"{principal.via}:{principal.name}")
    # "finishing": the rows are gone; the index files and the compaction wait for an
    # indexer that holds the index lock, and follow when it is done (202 Accepted).
    body = {
        "erased": report["erased"],
        "erasure": report["erasure"],
        "state": report["state"],
        "drafts_removed": report["drafts"],
        "suggestions_blanked": report["suggestions_blanked"],
    }
    return jsonify(body), 200 if report["state"] == "done" else 202


@bp.get("/storms")
@require_roles(*EVERYONE)
def storms():
    """Storms now: many alike open incidents within the storm window (kb.app.storms)."""
    from kb.app.storms import current_storms

    config = service().config
    found = current_storms(service())
    for storm in found:
        store().record_storm(storm)
    return jsonify(
        {
            "storms": found,
            "window_minutes": config.storm_window_minutes,
            "min_size": config.storm_min_size,
            "similarity": config.storm_similarity,
        }
    )


@bp.get("/metrics")
@require_roles(*MANAGERS)
def metrics():
    """KCS metrics, knowledge gaps and stale articles (kb.app.report.build_report)."""
    from kb.app.report import MAX_REPORT_DAYS, build_report

    unknown = sorted(set(request.args) - {"days"})
    if unknown:
        raise ValidationError(f"unknown query parameter {unknown[0]!r}; only 'days' is accepted")
    raw = request.args.get("days", "90")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= MAX_REPORT_DAYS:
        raise ValidationError(f"'days' must be a whole number from 1 to {MAX_REPORT_DAYS}")
    return jsonify(build_report(service(), days=int(raw)))


@bp.get("/health")
def health():
    """Liveness for anyone (a load balancer needs no more than ``status``); a caller with a
    token or a session also sees which index version this worker serves
    (``published_version`` is the newest on disk; a worker switches to it in the
    background), its pid and its counts."""
    try:
        caller = current_principal()
    except AuthError:
        caller = None
    try:
        state = service().search_state()
    except IndexMissingError as exc:
        message = str(exc) if caller is not None else "no index has been published yet"
        response = jsonify(
            {"status": "unavailable", "error": {"code": exc.code, "message": message}}
        )
        response.status_code = 503
        return response
    # A damaged published version: answers still come (from an older version brought up
    # to date by the change log), but whoever watches health must see it.
    status = "degraded" if state.damaged_version else "ok"
    damage = (
        {
            "index_damaged": {
                "version": state.damaged_version,
                "serving": state.version,
                "message": state.damage
                if caller is not None
                else "the published index version cannot be read; an older one serves",
            }
        }
        if state.damaged_version
        else {}
    )
    if caller is None:
        return jsonify({"status": status, **damage})
    return jsonify(
        {
            "status": status,
            "index_version": state.version,
            "published_version": service().published_version(),
            "worker": os.getpid(),
            "vectors": len(state.index),
            "documents": len(state.docs),
            "log_seq": state.seq,
            **damage,
        }
    )


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(max_k=current_app.config["KB_CONFIG"].max_k))
