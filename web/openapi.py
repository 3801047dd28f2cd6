"""The OpenAPI 3 description of /api/v1, served at /api/v1/openapi.json.

Tests check it against the routes the app really has, and schemathesis checks the
implementation against it.
"""

from __future__ import annotations

from typing import Any

from kb.importers import MAX_FIELD_CHARS, accepted_status_words
from kb.models import EVERYONE, MANAGERS, WRITERS

# Python's whitespace (what str.strip() removes), spelled out: JSON Schema's \s is
# ECMA-262's, which differs (it leaves out \x1c-\x1f and \x85, and takes in \ufeff).
_SPACE = (
    "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# One character that is neither whitespace nor NUL: text that is not blank.
_VISIBLE = f"[^{_SPACE}\\x00]"

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

_NOTE = (
    "The resolution as a note for the ticket: where the fix came from (the article's title and "
    "link, or the earlier incident), then the steps."
)
_NOTE_RESULT = _NOTE + " The same text the feedback answer gives when this result is used."

RESULT = {
    "type": "object",
    "required": ["rank", "kind", "id", "title", "resolution", "snippet", "score", "url"],
    "properties": {
        "rank": {"type": "integer", "minimum": 1},
        "kind": {"type": "string", "enum": ["article", "incident"]},
        "id": {"type": "string"},
        "title": {"type": "string"},
        "resolution": {"type": "string", "description": "Plain text; code in it is verbatim."},
        "resolution_code": {
            "type": "array",
            "description": "The code spans and blocks in resolution, in order, to show as code.",
            "items": {
                "type": "object",
                "required": ["text", "block"],
                "properties": {"text": {"type": "string"}, "block": {"type": "boolean"}},
            },
        },
        "snippet": {"type": "string", "description": "HTML-escaped text; matched terms in <mark>."},
        "score": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Estimated probability that this resolution fits (the same as "
            "confidence where that is a number).",
        },
        "confidence": {
            "type": ["number", "null"],
            "minimum": 0,
            "maximum": 1,
            "description": "Estimated chance that this result fixes the incident, calibrated "
            "on answerable and off-topic requests; null where the store has too "
            "little evidence for an honest number (use confidence_band).",
        },
        "confidence_band": {
            "type": ["string", "null"],
            "enum": ["high", "medium", "low", None],
            "description": "high: right at least nine times in ten on the store's replay; "
            "never high or medium under no_good_match.",
        },
        "url": {"type": "string"},
        "resolution_note": {"type": "string", "description": _NOTE_RESULT},
        "product": {"type": "string"},
        "category": {"type": "string"},
        "status": {"type": "string"},
        "validated_at": {"type": ["string", "null"]},
        "matched_terms": {"type": "array", "items": {"type": "string"}},
        "similar_count": {
            "type": "integer",
            "minimum": 0,
            "description": "Resolved incidents behind this resolution.",
        },
        "similar_incidents": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "similarity": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "Cosine similarity of the incident to the query.",
                    },
                    "score": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 1,
                        "description": "Deprecated: the same value as similarity.",
                    },
                },
            },
        },
        "family": {
            "type": ["object", "null"],
            "description": "The resolution family this result stands for (notes that say the same fix in "
            "different words); resolution is then its representative note.",
            "properties": {
                "id": {"type": "string"},
                "size": {"type": "integer", "minimum": 0},
                "representative_id": {"type": "string"},
            },
        },
        "own_resolution": {
            "type": ["string", "null"],
            "description": "For a family: the closest incident's own note.",
        },
        "steps": {
            "type": "array",
            "description": "Steps the family's notes agree on, in agents' own words (top result, or the "
            "top two when close).",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "incidents": {"type": "integer", "minimum": 0},
                    "incident_ids": {"type": "array", "items": {"type": "string"}},
                    "incident_urls": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

SUGGEST_REQUEST = {
    "type": "object",
    "properties": {
        "title": {"type": ["string", "null"], "maxLength": 100000},
        "description": {"type": ["string", "null"], "maxLength": 100000},
        "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
        "incident_id": {"type": ["string", "null"], "maxLength": 200},
        "audience": {
            "type": ["string", "null"],
            "enum": ["internal", "public", "", None],
            "description": "Empty or null: internal.",
        },
        "include_drafts": {"type": "boolean"},
        "preview": {
            "type": "boolean",
            "default": False,
            "description": "A search shown while the agent is still typing: answered as usual, but "
            "recorded as a suggestion only when settled (POST "
            "/api/v1/suggestions/{suggestion_id}/settle) or when a choice is recorded "
            "on it; otherwise dropped after an hour.",
        },
        "customer_tier": {
            "type": ["string", "null"],
            "maxLength": 200,
            "description": "A top tier (KB_TOP_CUSTOMER_TIERS) raises the suggested priority one step.",
        },
        "filters": {
            "type": ["object", "null"],
            "properties": {
                "product": {"type": ["string", "null"], "maxLength": 200},
                "category": {"type": ["string", "null"], "maxLength": 200},
            },
        },
    },
    "anyOf": [
        {"required": ["title"], "properties": {"title": {"type": "string", "pattern": _VISIBLE}}},
        {
            "required": ["description"],
            "properties": {"description": {"type": "string", "pattern": _VISIBLE}},
        },
        {
            "required": ["incident_id"],
            "properties": {"incident_id": {"type": "string", "minLength": 1}},
            "description": "Without text: an incident the store already holds, searched by its id (404 if none).",
        },
    ],
}

_TRIAGE_FIELD = {
    "type": "object",
    "properties": {
        "value": {"type": ["string", "null"], "description": "The prediction; null when not sure."},
        "probability": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "Calibrated on a replay of the store's own incidents.",
        },
        "not_sure": {"type": "boolean"},
        "best_guess": {"type": ["string", "null"]},
        "nearest": {
            "type": ["string", "null"],
            "description": "The most similar incident's value.",
        },
        "evidence": {"type": "integer", "description": "Similar incidents that had a value."},
        "similar_incidents": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Similar incidents that had the value; empty for the public audience.",
        },
        "source": {
            "type": "string",
            "description": "What the value rests on: the store's model of the field, "
            "the similar incidents, or both.",
        },
        "reason": {
            "type": "string",
            "description": "Why triage is not sure (no good match, too little "
            "evidence, a probability under the store's threshold).",
        },
        "customer_tier": {
            "type": "object",
            "description": "Assignment group only: the customer's tier is routed "
            "to this group far more often than incidents in general.",
            "properties": {
                "tier": {"type": "string"},
                "group": {"type": "string"},
                "share": {"type": "number"},
                "incidents": {"type": "integer"},
                "overall_share": {"type": "number"},
                "note": {"type": "string"},
            },
        },
    },
}
TRIAGE = {
    "type": "object",
    "description": "Where the incident should go and whether the first line can solve it, from its "
    "most similar resolved incidents.",
    "properties": {
        "similar_incidents": {"type": "integer"},
        "category": _TRIAGE_FIELD,
        "product": _TRIAGE_FIELD,
        "assignment_group": _TRIAGE_FIELD,
        "priority": {
            "type": "object",
            "properties": {
                "value": {"type": ["string", "null"]},
                "raised": {"type": "boolean"},
                "probability": {"type": "number"},
                "not_sure": {"type": "boolean"},
                "similar_priority": {"type": "string"},
                "note": {"type": "string"},
                "similar_incidents": {"type": "array", "items": {"type": "string"}},
            },
        },
        "duplicates": {
            "type": "array",
            "description": "Open incidents of the last days this one may duplicate.",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "string"},
                    "product": {"type": "string"},
                    "opened_at": {"type": "string"},
                    "age": {"type": "string"},
                    "similarity": {"type": "number"},
                },
            },
        },
        "first_line": {
            "type": "object",
            "properties": {
                "similar": {"type": "integer"},
                "solved_at_first_line": {"type": "integer"},
                "resolution": {"type": ["object", "null"]},
                "text": {"type": "string"},
                "applies": {
                    "type": "boolean",
                    "description": "false under no_good_match: the similar incidents are not like this one "
                    "(text is then empty).",
                },
                "note": {"type": "string"},
            },
        },
    },
}

SUGGESTION = {
    "type": "object",
    "required": ["suggestion_id", "no_good_match", "results"],
    "properties": {
        "suggestion_id": {"type": "string"},
        "no_good_match": {"type": "boolean"},
        "confidence": {"type": "number"},
        "answerable_probability": {
            "type": ["number", "null"],
            "description": "Estimated chance that the store holds an answer.",
        },
        "calibrated_for": {
            "type": "string",
            "description": "Language whose fitted confidence maps judged the request "
            '("*": the store-wide ones).',
        },
        "truncated": {"type": "boolean"},
        "triage": TRIAGE,
        "language": {
            "type": ["object", "null"],
            "description": "The language the request is written in, and whether the search model reads it "
            "well; null from a server that does not say.",
            "properties": {
                "code": {
                    "type": ["string", "null"],
                    "description": "ISO 639-1; null when the text is too short "
                    "or made of codes to tell.",
                },
                "name": {"type": ["string", "null"]},
                "served": {
                    "type": "boolean",
                    "description": "false: the model does not read this language "
                    "well; results rest mostly on shared words.",
                },
                "note": {
                    "type": "string",
                    "description": "What to show a person when served is false.",
                },
            },
        },
        "results": {"type": "array", "items": RESULT},
    },
}

FEEDBACK_REQUEST = {
    "type": "object",
    "properties": {
        "used": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": 200,
            "description": "The id of the result that was used; null when none helped.",
        },
        "outcome": {
            "type": ["string", "null"],
            "enum": ["used", "none_helped", None],
            "description": "May be left out when 'used' names a result.",
        },
        "agent": {"type": ["string", "null"], "maxLength": 200},
    },
    "oneOf": [
        {
            "required": ["used"],
            "properties": {"outcome": {"enum": ["used", None]}, "used": {"type": "string"}},
        },
        {
            "required": ["outcome"],
            "properties": {"outcome": {"const": "none_helped"}, "used": {"type": "null"}},
        },
    ],
}

FLAG_REQUEST = {
    "type": "object",
    "required": ["kind"],
    "properties": {
        "kind": {"type": "string", "enum": ["wrong", "outdated", "unclear"]},
        "note": {
            "type": ["string", "null"],
            "maxLength": 2000,
            "description": "What did not work or what changed (redacted before it is stored).",
        },
        "agent": {
            "type": ["string", "null"],
            "maxLength": 200,
            "description": "With an integration token: the agent the flag is from.",
        },
    },
}

FLAG = {
    "type": "object",
    "required": ["id", "article_id", "kind", "agent", "open_flags"],
    "properties": {
        "id": {"type": "integer"},
        "article_id": {"type": "string"},
        "kind": {"type": "string"},
        "agent": {"type": "string"},
        "open_flags": {"type": "integer"},
    },
}

FEEDBACK = {
    "type": "object",
    "required": ["suggestion_id", "outcome", "status"],
    "properties": {
        "suggestion_id": {"type": "string"},
        "agent": {"type": "string"},
        "outcome": {"type": "string"},
        "used": {"type": ["string", "null"]},
        "used_rank": {"type": ["integer", "null"]},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "status": {"type": "string", "enum": ["created", "unchanged", "changed"]},
        "resolution_note": {"type": "string", "description": _NOTE + " Empty when none helped."},
    },
}

OUTCOME_EVENT = {
    "type": "object",
    "description": "Posted to KB_EVENTS_URL when an agent's choice is recorded or changed; the body is signed: "
    "X-KB-Signature: sha256=<hex HMAC-SHA256 of the raw body with KB_EVENTS_SECRET>. Headers "
    "X-KB-Event (the event) and X-KB-Event-Id (the event_id) come with it. Any 2xx answer "
    "takes it; anything else (a redirect included) is retried later with back-off.",
    "required": [
        "event",
        "event_id",
        "occurred_at",
        "suggestion_id",
        "incident_id",
        "agent",
        "result",
        "resolution_note",
    ],
    "properties": {
        "event": {"type": "string", "enum": ["resolution_used", "none_helped"]},
        "event_id": {
            "type": "string",
            "description": "Unique; the same id on a retry (deduplicate on it).",
        },
        "occurred_at": {
            "type": "string",
            "description": "When the choice was recorded (UTC, ISO 8601).",
        },
        "change": {
            "type": "string",
            "enum": ["created", "changed"],
            "description": "changed: this replaces the agent's earlier choice on the same search.",
        },
        "suggestion_id": {"type": "string"},
        "incident_id": {
            "type": "string",
            "description": "The ticket's id as sent with the search; may be empty.",
        },
        "agent": {"type": "string"},
        "result": {
            "type": ["object", "null"],
            "description": "The result used; null for none_helped.",
            "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string", "enum": ["article", "incident"]},
                "title": {"type": "string"},
                "rank": {"type": "integer"},
                "url": {"type": "string"},
            },
        },
        "resolution_note": {"type": "string", "description": _NOTE},
        "search_url": {"type": "string", "description": "The search on the agent page, by id."},
    },
}

# Import rules (kb.importers): no NUL characters; a title or a description that is not blank.
# Numbers are read as text (ticket systems often send numeric ids); null means absent.
_TEXT = {
    "type": ["string", "number", "null"],
    "maxLength": MAX_FIELD_CHARS,
    "pattern": "^[^\\x00]*$",
}
_NON_BLANK = {"type": ["string", "number"], "pattern": _VISIBLE}
_TIMESTAMP = {
    "type": ["string", "null"],
    "anyOf": [{"format": "date-time"}, {"enum": ["", None]}],
    "description": "ISO 8601; common ticket-system export formats are accepted too. "
    "Empty or null: unknown.",
}

INCIDENT = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {
            "type": ["string", "number"],
            "minLength": 1,
            "maxLength": 200,
            "minimum": 0,
            "pattern": f"^[{_SPACE}]*[A-Za-z0-9][A-Za-z0-9._:#@+-]*[{_SPACE}]*$",
            "description": "Letters, digits and . _ - : # @ + (starting with a letter or digit), "
            "at most 200; surrounding whitespace is trimmed.",
        },
        "title": _TEXT,
        "description": _TEXT,
        "resolution": _TEXT,
        "resolution_code": _TEXT,
        "category": _TEXT,
        "product": _TEXT,
        "status": {
            "type": ["string", "null"],
            "enum": [*accepted_status_words(), "", None],
            "description": "open, resolved or closed; common ticket-system words are mapped "
            "(compared in lower case). Empty: resolved if there is a resolution.",
        },
        "opened_at": _TIMESTAMP,
        "resolved_at": _TIMESTAMP,
        "article_id": _TEXT,
        "assignment_group": _TEXT,
        "priority": _TEXT,
        "escalated": {
            "type": ["boolean", "string", "number", "null"],
            "maxLength": MAX_FIELD_CHARS,
            "pattern": "^[^\\x00]*$",
            "description": "Whether it left the first line: true/false, yes/no, or a count of "
            "escalations or reassignments (more than 0: yes); other words are "
            "kept as unknown.",
        },
        "customer_tier": _TEXT,
    },
    "anyOf": [
        {"required": ["title"], "properties": {"title": _NON_BLANK}},
        {"required": ["description"], "properties": {"description": _NON_BLANK}},
    ],
}

UPSERT_RESULT = {
    "type": "object",
    "required": ["upserted", "ids"],
    "properties": {
        "upserted": {"type": "integer"},
        "ids": {"type": "array", "items": {"type": "string"}},
        "inserted": {"type": "integer"},
        "updated": {"type": "integer"},
        "unchanged": {"type": "integer"},
    },
}


_COUNT = {"type": "integer", "minimum": 0}
_RATE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_ARRAY_OF_OBJECTS = {"type": "array", "items": {"type": "object"}}

REPORT = {
    "type": "object",
    "description": "KCS metrics over the last `days` days; see kb.app.report for every field.",
    "required": [
        "generated_at",
        "days",
        "since",
        "totals",
        "link_rate",
        "new_vs_known",
        "none_helped_rate",
        "acceptance_by_rank",
        "reuse",
        "pareto",
        "over_time",
        "gaps",
        "stale",
    ],
    "properties": {
        "generated_at": {"type": "string"},
        "days": {"type": "integer", "minimum": 1},
        "since": {"type": "string"},
        "totals": {
            "type": "object",
            "properties": {
                "suggestions": _COUNT,
                "no_good_match": _COUNT,
                "feedback": _COUNT,
                "used": _COUNT,
                "none_helped": _COUNT,
                "incidents_closed": _COUNT,
                "articles": {"type": "object", "additionalProperties": _COUNT},
            },
        },
        "link_rate": {
            "type": "object",
            "required": ["value", "linked", "closed"],
            "properties": {"value": _RATE, "linked": _COUNT, "closed": _COUNT},
        },
        "new_vs_known": {
            "type": "object",
            "required": ["known", "new", "known_rate"],
            "properties": {"known": _COUNT, "new": _COUNT, "known_rate": _RATE},
        },
        "none_helped_rate": {
            "type": "object",
            "required": ["value", "none_helped", "feedback"],
            "properties": {"value": _RATE, "none_helped": _COUNT, "feedback": _COUNT},
        },
        "acceptance_by_rank": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["rank", "used", "share"],
                "properties": {"rank": {"type": "integer"}, "used": _COUNT, "share": _RATE},
            },
        },
        "reuse": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "reuse"],
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "linked_incidents": _COUNT,
                    "used": _COUNT,
                    "reuse": _COUNT,
                },
            },
        },
        "pareto": {
            "type": "object",
            "properties": {
                "articles": _COUNT,
                "top_articles": _COUNT,
                "top_share": _RATE,
                "articles_for_80": {"type": ["integer", "null"]},
                "points": _ARRAY_OF_OBJECTS,
            },
        },
        "over_time": {
            "type": "object",
            "required": ["period", "series"],
            "properties": {
                "period": {"type": "string", "enum": ["day", "week"]},
                "series": _ARRAY_OF_OBJECTS,
            },
        },
        "gaps": {
            "type": "object",
            "required": ["clusters"],
            "properties": {
                "threshold": {"type": "number"},
                "queries": _COUNT,
                "clusters": _ARRAY_OF_OBJECTS,
            },
        },
        "stale": {
            "type": "object",
            "required": ["articles"],
            "properties": {"explanation": {"type": "string"}, "articles": _ARRAY_OF_OBJECTS},
        },
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed or invalid input",
        401: "Missing or unknown token",
        403: "Role not allowed",
        404: "Not found",
        413: "Body too large",
        503: "Index not built yet",
    }
    return {
        str(s): {
            "description": reasons[s],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for s in statuses
    }


def _json(schema_ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}


def openapi_document(max_k: int = 50) -> dict[str, Any]:
    """The document for a service whose requests may ask for at most ``max_k`` results
    (the KB_MAX_K setting; the API refuses more)."""
    secured = [{"bearer": []}]
    erased = {
        "type": "object",
        "required": ["erased", "erasure"],
        "properties": {
            "erased": {"type": "array", "items": {"type": "string"}},
            "erasure": {"type": "integer"},
            "state": {"type": "string", "enum": ["done", "finishing"]},
            "drafts_removed": {"type": "array", "items": {"type": "string"}},
            "suggestions_blanked": {"type": "integer"},
        },
    }
    suggest_request = {
        **SUGGEST_REQUEST,
        "properties": {
            **SUGGEST_REQUEST["properties"],
            "k": {**SUGGEST_REQUEST["properties"]["k"], "maximum": max_k},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Incident-resolution knowledge search",
            "version": "1.0.0",
            "description": "Ranked prior resolutions for new incidents, and the agent's choice.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": ERROR,
                "Result": RESULT,
                "SuggestRequest": suggest_request,
                "Suggestion": SUGGESTION,
                "FeedbackRequest": FEEDBACK_REQUEST,
                "Feedback": FEEDBACK,
                "Incident": INCIDENT,
                "UpsertResult": UPSERT_RESULT,
                "Report": REPORT,
                "OutcomeEvent": OUTCOME_EVENT,
                "FlagRequest": FLAG_REQUEST,
                "Flag": FLAG,
            },
        },
        "webhooks": {
            name: {
                "post": {
                    "summary": summary,
                    "operationId": f"{name}Event",
                    "requestBody": {"required": True, "content": _json("OutcomeEvent")},
                    "responses": {"200": {"description": "Taken (any 2xx)"}},
                }
            }
            for name, summary in (
                ("resolution_used", "An agent used a result for a ticket"),
                ("none_helped", "An agent said none of the results helped"),
            )
        },
        "paths": {
            "/api/v1/suggest": {
                "post": {
                    "operationId": "suggest",
                    "summary": "Ranked prior resolutions for one incident",
                    "security": secured,
                    "x-roles": list(EVERYONE),
                    "requestBody": {"required": True, "content": _json("SuggestRequest")},
                    "responses": {
                        "200": {
                            "description": "Ranked resolutions",
                            "content": _json("Suggestion"),
                        },
                        **_errors(400, 401, 403, 404, 413, 503),
                    },
                }
            },
            "/api/v1/suggestions/{suggestion_id}/feedback": {
                "post": {
                    "operationId": "recordFeedback",
                    "summary": "Record which result the agent used, or that none helped",
                    "security": secured,
                    "x-roles": list(EVERYONE),
                    "parameters": [
                        {
                            "name": "suggestion_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 200},
                        }
                    ],
                    "requestBody": {"required": True, "content": _json("FeedbackRequest")},
                    "responses": {
                        "201": {
                            "description": "Recorded (or already recorded)",
                            "content": _json("Feedback"),
                        },
                        **_errors(400, 401, 403, 404, 413),
                    },
                }
            },
            "/api/v1/articles/{article_id}/flags": {
                "post": {
                    "operationId": "flagArticle",
                    "summary": "Flag an article met in a result as wrong, outdated or unclear, with a note",
                    "security": secured,
                    "x-roles": list(EVERYONE),
                    "parameters": [
                        {
                            "name": "article_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 200},
                        }
                    ],
                    "requestBody": {"required": True, "content": _json("FlagRequest")},
                    "responses": {
                        "201": {
                            "description": "Flagged (a person's open flag on the article is replaced)",
                            "content": _json("Flag"),
                        },
                        **_errors(400, 401, 403, 404, 413),
                    },
                }
            },
            "/api/v1/suggestions/{suggestion_id}/settle": {
                "post": {
                    "operationId": "settleSuggestion",
                    "summary": "Record a previewed search as a suggestion (only whoever asked; again is a no-op)",
                    "security": secured,
                    "x-roles": list(EVERYONE),
                    "parameters": [
                        {
                            "name": "suggestion_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 200},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Recorded",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["suggestion_id", "recorded"],
                                        "properties": {
                                            "suggestion_id": {"type": "string"},
                                            "recorded": {"type": "boolean"},
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/api/v1/incidents": {
                "post": {
                    "operationId": "upsertIncidents",
                    "summary": "Upsert one incident or a list; searchable right away",
                    "security": secured,
                    "x-roles": list(WRITERS),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Incident"},
                                        {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": 1000,
                                            "items": {"$ref": "#/components/schemas/Incident"},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "Upserted", "content": _json("UpsertResult")},
                        **_errors(400, 401, 403, 413),
                    },
                }
            },
            "/api/v1/incidents/{incident_id}": {
                "delete": {
                    "operationId": "eraseIncident",
                    "summary": "Erase an incident everywhere (rows, index files, recorded text, free pages)",
                    "security": secured,
                    "x-roles": ["admin"],
                    "parameters": [
                        {
                            "name": "incident_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "maxLength": 200},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "Erased",
                            "content": {"application/json": {"schema": erased}},
                        },
                        "202": {
                            "description": "Rows erased; the index files and compaction follow as soon "
                            "as a running indexer releases the index lock",
                            "content": {"application/json": {"schema": erased}},
                        },
                        **_errors(401, 403, 404),
                    },
                }
            },
            "/api/v1/storms": {
                "get": {
                    "operationId": "storms",
                    "summary": "Storms now: many alike open incidents in a short window",
                    "security": secured,
                    "x-roles": list(EVERYONE),
                    "responses": {
                        "200": {
                            "description": "The current storms",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["storms"],
                                        "properties": {
                                            "storms": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "properties": {
                                                        "id": {"type": "string"},
                                                        "title": {"type": "string"},
                                                        "size": {"type": "integer"},
                                                        "product": {"type": "string"},
                                                        "first": {"type": "object"},
                                                        "latest": {"type": "object"},
                                                        "incidents": {
                                                            "type": "array",
                                                            "items": {"type": "string"},
                                                        },
                                                    },
                                                },
                                            },
                                            "window_minutes": {"type": "number"},
                                            "min_size": {"type": "integer"},
                                            "similarity": {"type": "number"},
                                        },
                                    }
                                }
                            },
                        },
                        **_errors(401, 403),
                    },
                }
            },
            "/api/v1/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "KCS metrics, knowledge gaps and stale articles (the `kb report` data)",
                    "security": secured,
                    "x-roles": list(MANAGERS),
                    "parameters": [
                        {
                            "name": "days",
                            "in": "query",
                            "required": False,
                            "description": "The window, in days (default 90).",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 3650,
                                "default": 90,
                            },
                        }
                    ],
                    "responses": {
                        "200": {"description": "The report", "content": _json("Report")},
                        **_errors(400, 401, 403),
                    },
                }
            },
            "/api/v1/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness; with a token, also the index version, worker and counts",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Serving",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": {
                            "description": "No index yet",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3 document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
    }
