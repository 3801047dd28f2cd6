"""The domain: articles, incidents, suggestions and the feedback recorded on them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ARTICLE_STATES = ("draft", "not_validated", "validated", "archived")
AUDIENCES = ("internal", "public")
INCIDENT_STATES = ("open", "resolved", "closed")
OUTCOMES = ("used", "none_helped")
ROLES = ("agent", "integration", "knowledge_manager", "admin")
# Who may do what, by role (the API, the pages, the CLI and the OpenAPI document use these).
EVERYONE = ROLES
PEOPLE = ("agent", "knowledge_manager", "admin")  # roles a person signing in may have
MANAGERS = ("knowledge_manager", "admin")
WRITERS = ("integration", "knowledge_manager", "admin")
# Export formats `kb import incidents` reads (kb.importers maps each one's fields).
IMPORT_FORMATS = ("generic", "servicenow", "jira", "zendesk")
# What `kb eval --ranking` and SuggestRequest.ranking accept: the ranking the store chose
# ("shipped") or one of the reference rankings.
RANKING_MODES = ("shipped", "dense", "bm25", "rrf")

# States an agent may be offered. Drafts are work in progress; archived articles leave search.
SEARCHABLE_ARTICLE_STATES = ("not_validated", "validated")


def content_hash(*parts: Any) -> str:
    """A stable hash of the given values (JSON-encoded), used to detect changed content."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class Article:
    id: str
    title: str
    body: str
    status: str = "draft"
    audience: str = "internal"
    product: str = ""
    category: str = ""
    tags: list[str] = field(default_factory=list)
    owner: str = ""
    review_by: str = ""
    updated: str = ""
    path: str = ""

    def fingerprint(self) -> str:
        return content_hash(
            self.title,
            self.body,
            self.status,
            self.audience,
            self.product,
            self.category,
            self.tags,
            self.owner,
            self.review_by,
            self.updated,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Incident fields that hold free text as a ticket system or a person wrote it: all are
# redacted before they are stored and searched by erasure (the id, the state, the dates and
# the yes/no of escalation are checked values).
INCIDENT_TEXT_FIELDS = (
    "title",
    "description",
    "resolution",
    "resolution_code",
    "category",
    "product",
    "assignment_group",
    "priority",
    "customer_tier",
    "article_id",
)


@dataclass
class Incident:
    id: str
    title: str = ""
    description: str = ""
    resolution: str = ""
    resolution_code: str = ""
    category: str = ""
    product: str = ""
    status: str = "resolved"
    opened_at: str = ""
    resolved_at: str = ""
    article_id: str = ""
    # Routing facts, as the ticket system had them (kept as given, never invented).
    assignment_group: str = ""
    priority: str = ""
    escalated: str = ""  # "yes" when it left the first line, "no" when it did not, "" unknown
    customer_tier: str = ""

    @property
    def is_prior_resolution(self) -> bool:
        """Only resolved or closed incidents that have a resolution are offered."""
        return self.status in ("resolved", "closed") and bool(self.resolution.strip())

    def fingerprint(self) -> str:
        parts = [
            self.title,
            self.description,
            self.resolution,
            self.resolution_code,
            self.category,
            self.product,
            self.status,
            self.opened_at,
            self.resolved_at,
            self.article_id,
        ]
        routing = [self.assignment_group, self.priority, self.escalated, self.customer_tier]
        # Without routing facts the fingerprint is what it was before they existed: stores
        # filled earlier see their incidents as unchanged.
        return content_hash(*parts, *routing) if any(routing) else content_hash(*parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def numbered_steps(steps: list[dict[str, Any]]) -> str:
    """Suggested steps as plain text, one numbered step a line."""
    return "\n".join(f"{n}. {s['text']}" for n, s in enumerate(steps, start=1))


# The fields of an incident record, in the generic format's column order: read from the
# dataclass, so importers and the store name the same fields.
INCIDENT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Incident))


@dataclass
class SuggestionResult:
    rank: int
    kind: str
    id: str
    title: str
    resolution: str
    snippet: str
    score: float
    product: str = ""
    category: str = ""
    status: str = ""
    validated_at: str = ""
    matched_terms: list[str] = field(default_factory=list)
    similar_incidents: list[dict[str, Any]] = field(default_factory=list)
    similar_count: int = 0
    # The code in ``resolution``, in order: {"text": ..., "block": bool} (articles only).
    resolution_code: list[dict[str, Any]] = field(default_factory=list)
    group: str = ""
    raw_score: float = 0.0
    # The estimated chance this result fixes the incident (search.confidence); None where
    # no honest number can be given (then only ``confidence_band`` is shown).
    confidence: float | None = None
    confidence_band: str = ""  # "high" | "medium" | "low"
    # A resolution family (search.families): {"id", "size", "representative_id"}; then
    # ``resolution`` is the family's representative note and ``own_resolution`` the note of
    # the closest incident itself.
    family: dict[str, Any] = field(default_factory=dict)
    own_resolution: str = ""
    # Steps the family's notes agree on (search.steps), on the top result (or the top two
    # when they are close): [{"text", "incidents", "incident_ids"}].
    steps: list[dict[str, Any]] = field(default_factory=list)

    def fix_text(self) -> str:
        """The fix an agent pastes: the steps the family's notes agree on, numbered, when
        this result has them; else the resolution."""
        return numbered_steps(self.steps) if self.steps else self.resolution

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Suggestion:
    id: str
    query: str
    no_good_match: bool
    results: list[SuggestionResult]
    confidence: float = 0.0
    truncated: bool = False
    threshold: float = 0.0
    triage: dict[str, Any] = field(default_factory=dict)  # search.triage.triage()
    p_answerable: float | None = None  # P(the store holds an answer), where fitted
    calibrated_for: str = "*"  # whose confidence maps judged it ("*": the store-wide ones)
    language: dict[str, Any] = field(default_factory=dict)  # kb.language.request_language()
