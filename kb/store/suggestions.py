"""Suggestions as they were shown, and the choice an agent made on each."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kb.errors import ForbiddenError, NotFoundError, ValidationError
from kb.models import OUTCOMES
from kb.store.base import utc_now


@dataclass
class FeedbackRecord:
    suggestion_id: str
    agent: str
    outcome: str
    used_id: str | None
    used_rank: int | None
    created_at: str
    updated_at: str
    status: str  # "created" | "unchanged" | "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "suggestion_id": self.suggestion_id,
            "agent": self.agent,
            "outcome": self.outcome,
            "used": self.used_id,
            "used_rank": self.used_rank,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": self.status,
        }


PREVIEW_HOURS = 1


def _hours_ago(hours: float) -> str:
    moment = datetime.now(UTC) - timedelta(hours=hours)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def redacted_filters(filters: dict[str, Any] | None, redact) -> dict[str, Any]:
    """Filters as recorded: their string values passed through ``redact``."""
    return {
        key: redact(value) if isinstance(value, str) else value
        for key, value in (filters or {}).items()
    }


def new_suggestion_id() -> str:
    return "sg_" + secrets.token_urlsafe(12)


class SuggestionsMixin:
    def record_suggestion(
        self,
        *,
        query: str,
        results: list[dict[str, Any]],
        no_good_match: bool,
        confidence: float,
        k: int,
        filters: dict[str, Any] | None = None,
        incident_ref: str = "",
        principal: str = "",
        model_id: str = "",
        latency_ms: float = 0.0,
        suggestion_id: str | None = None,
        title: str = "",
        predicted_group: str = "",
        predicted_sure: bool | None = None,
        preview: bool = False,
    ) -> str:
        """Store what was asked and what was shown; returns the suggestion id. Every text the
        caller typed (query, title, the incident id, the filters) is redacted first.

        A ``preview`` (a search shown while the agent is still typing) is kept aside, not
        counted as a suggestion, until :meth:`settle_suggestion` records it (the agent acted
        on it, or stopped typing); previews never settled are dropped after an hour."""
        suggestion_id = suggestion_id or new_suggestion_id()
        redact = self.redactor.redact
        row = {
            "id": suggestion_id,
            "created_at": utc_now(),
            "query": redact(query),
            "title": redact(title),
            "predicted_group": redact(predicted_group),
            "predicted_sure": "" if predicted_sure is None else "yes" if predicted_sure else "no",
            "incident_ref": redact(incident_ref or ""),
            "filters": json.dumps(redacted_filters(filters, redact)),
            "k": k,
            "no_good_match": int(no_good_match),
            "confidence": confidence,
            "results": json.dumps(results),
            "principal": principal,
            "model_id": model_id,
            "latency_ms": latency_ms,
        }
        with self.write():
            if preview:
                self.db.execute(
                    "DELETE FROM suggestion_previews WHERE created_at < ?",
                    [_hours_ago(PREVIEW_HOURS)],
                )
                self.db.execute(
                    "INSERT INTO suggestion_previews (id, created_at, principal, incident_ref, payload) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        suggestion_id,
                        row["created_at"],
                        principal,
                        row["incident_ref"],
                        json.dumps(row),
                    ],
                )
            else:
                self.db["suggestions"].insert(row)
        return suggestion_id

    def settle_suggestion(self, suggestion_id: str, *, principal: str | None = None) -> bool:
        """Record a previewed search as a suggestion (once; again is a no-op). True when
        the id is now a recorded suggestion (of ``principal``, when given); False for an
        unknown id, an expired preview or someone else's."""
        with self.write():
            row = self.db.execute(
                "SELECT principal, payload FROM suggestion_previews WHERE id = ?", [suggestion_id]
            ).fetchone()
            if row is not None:
                if principal is not None and row[0] != principal:
                    return False
                self.db["suggestions"].insert(json.loads(row[1]))
                self.db.execute("DELETE FROM suggestion_previews WHERE id = ?", [suggestion_id])
                return True
            kept = self.db.execute(
                "SELECT principal FROM suggestions WHERE id = ?", [suggestion_id]
            ).fetchone()
        return kept is not None and (principal is None or kept[0] == principal)

    def get_suggestion(self, suggestion_id: str) -> dict[str, Any]:
        rows = list(self.db["suggestions"].rows_where("id = ?", [suggestion_id]))
        if not rows:
            raise NotFoundError(f"no suggestion with id {suggestion_id!r}")
        row = rows[0]
        row["results"] = json.loads(row["results"])
        row["filters"] = json.loads(row["filters"])
        row["no_good_match"] = bool(row["no_good_match"])
        return row

    def record_feedback(
        self,
        suggestion_id: str,
        *,
        outcome: str,
        used_id: str | None,
        agent: str,
        caller: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> FeedbackRecord:
        """Record an agent's choice on a suggestion.

        One choice per suggestion and agent: the same request again is a no-op
        (status "unchanged"); a different choice replaces the old one (status "changed")
        and both stay in the event history. With ``event`` (a payload for a ticket system),
        a new or changed choice also queues that event in the outbox, in the same transaction
        (``resolution_used`` or ``none_helped``); an unchanged one queues nothing.

        ``caller`` (the signed-in person or the token's name) must be whoever asked for
        the suggestion: a choice on someone else's suggestion is refused (ForbiddenError).
        An integration records for the agent it asked for, on the suggestions it asked.

        Raises NotFoundError for an unknown suggestion and ValidationError for an outcome
        that does not fit, or a used result that was not shown in that suggestion.
        """
        if outcome not in OUTCOMES:
            raise ValidationError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if outcome == "used" and not used_id:
            raise ValidationError("outcome 'used' needs the id of the result that was used")
        if outcome == "none_helped" and used_id:
            raise ValidationError("outcome 'none_helped' cannot name a used result")
        agent = self.redactor.redact(agent or "anonymous")  # an integration names the agent freely
        now = utc_now()
        with self.write():
            suggestion = self.get_suggestion(suggestion_id)
            if caller is not None and suggestion["principal"] and suggestion["principal"] != caller:
                raise ForbiddenError(
                    "only whoever asked for this suggestion can record a choice on it"
                )
            used_rank = used_kind = None
            if used_id:
                shown = {r["id"]: r for r in suggestion["results"]}
                if used_id not in shown:
                    raise ValidationError(
                        f"result {used_id!r} was not shown in suggestion {suggestion_id}"
                    )
                used_rank, used_kind = shown[used_id]["rank"], shown[used_id]["kind"]
            existing = list(
                self.db["feedback"].rows_where(
                    "suggestion_id = ? AND agent = ?", [suggestion_id, agent]
                )
            )
            if existing and existing[0]["outcome"] == outcome and existing[0]["used_id"] == used_id:
                row = existing[0]
                return FeedbackRecord(
                    suggestion_id,
                    agent,
                    outcome,
                    used_id,
                    row["used_rank"],
                    row["created_at"],
                    row["updated_at"],
                    "unchanged",
                )
            created_at = existing[0]["created_at"] if existing else now
            self.db["feedback"].upsert(
                {
                    "suggestion_id": suggestion_id,
                    "agent": agent,
                    "outcome": outcome,
                    "used_id": used_id,
                    "used_kind": used_kind,
                    "used_rank": used_rank,
                    "created_at": created_at,
                    "updated_at": now,
                    "changes": (existing[0]["changes"] + 1) if existing else 0,
                },
                pk=("suggestion_id", "agent"),
            )
            self.db["feedback_events"].insert(
                {
                    "suggestion_id": suggestion_id,
                    "agent": agent,
                    "outcome": outcome,
                    "used_id": used_id,
                    "at": now,
                }
            )
            if event is not None:
                self._queue_event(
                    "resolution_used" if outcome == "used" else "none_helped",
                    dict(
                        event,
                        agent=agent,
                        occurred_at=now,
                        change="changed" if existing else "created",
                    ),
                )
        return FeedbackRecord(
            suggestion_id,
            agent,
            outcome,
            used_id,
            used_rank,
            created_at,
            now,
            "changed" if existing else "created",
        )

    def feedback_with_results(self) -> list[dict[str, Any]]:
        """Every current choice with the results that were shown, oldest first."""
        rows = self.db.query(
            "SELECT f.agent, f.outcome, f.used_id, f.updated_at, s.results, s.principal "
            "FROM feedback f JOIN suggestions s ON s.id = f.suggestion_id ORDER BY f.updated_at"
        )
        return [dict(row, results=json.loads(row["results"])) for row in rows]

    def feedback_version(self) -> tuple[int, str]:
        """Changes whenever a choice is recorded or changed (cheap to poll)."""
        row = self.db.execute("SELECT count(*), max(updated_at) FROM feedback").fetchone()
        return row[0], row[1] or ""

    def used_feedback(self) -> list[dict[str, Any]]:
        """Every "used" choice with the query it answered and what was shown, oldest first."""
        rows = self.db.query(
            "SELECT f.agent, substr(f.updated_at, 1, 10) AS day, f.used_id, s.query, s.results "
            "FROM feedback f JOIN suggestions s ON s.id = f.suggestion_id "
            "WHERE f.outcome = 'used' ORDER BY f.updated_at"
        )
        return [dict(row, results=json.loads(row["results"])) for row in rows]

    def feedback_for(self, suggestion_id: str) -> list[dict[str, Any]]:
        return list(self.db["feedback"].rows_where("suggestion_id = ?", [suggestion_id]))

    def count_feedback(self) -> int:
        return self.db["feedback"].count

    def count_suggestions(self) -> int:
        return self.db["suggestions"].count

    # --- ranking profiles ------------------------------------------------------------

    def save_ranking_profile(self, model_id: str, params: dict[str, Any]) -> None:
        with self.write():
            self.db["ranking_profiles"].insert(
                {"model_id": model_id, "created_at": utc_now(), "params": json.dumps(params)}
            )
            # Keep a short history: enough to compare, not a growing table.
            self.db.execute(
                "DELETE FROM ranking_profiles WHERE model_id = ? AND id NOT IN "
                "(SELECT id FROM ranking_profiles WHERE model_id = ? ORDER BY id DESC LIMIT 5)",
                [model_id, model_id],
            )

    def latest_ranking_profile(self, model_id: str) -> dict[str, Any] | None:
        rows = list(
            self.db["ranking_profiles"].rows_where(
                "model_id = ?", [model_id], order_by="id desc", limit=1
            )
        )
        return json.loads(rows[0]["params"]) if rows else None
