"""The outbox of events for a ticket system: an agent used a result, or none helped.

An event is written in the same transaction as the choice it reports, so a choice that is
recorded is never lost to a crash before its post; a background thread claims each due
event with a lease (so one worker posts it), and marks it delivered or due again later.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from kb.store.base import utc_now


def new_event_id() -> str:
    return "ev_" + secrets.token_urlsafe(12)


class EventsMixin:
    def _queue_event(self, kind: str, payload: dict[str, Any]) -> str:
        """Add an event to the outbox; call inside ``self.write()``."""
        event_id = payload.get("event_id") or new_event_id()
        payload = dict(payload, event_id=event_id, event=kind)
        result = payload.get("result") or {}
        self.db.execute(
            "INSERT INTO outgoing_events (id, created_at, kind, incident_ref, result_kind, result_id, payload) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                event_id,
                payload.get("occurred_at") or utc_now(),
                kind,
                payload.get("incident_id") or "",
                result.get("kind") or "",
                result.get("id") or "",
                json.dumps(payload),
            ],
        )
        return event_id

    def claim_event_delivery(self, now: str, lease_until: str) -> dict[str, Any] | None:
        """The oldest undelivered event due for a (re)try, leased to this caller so no other
        worker posts it meanwhile; None when there is none."""
        with self.write():
            row = self.db.execute(
                "SELECT id, kind, payload, attempts FROM outgoing_events WHERE delivered_at = '' "
                "AND next_attempt_at <= ? AND lease_until <= ? ORDER BY created_at, id LIMIT 1",
                [now, now],
            ).fetchone()
            if row is None:
                return None
            self.db.execute(
                "UPDATE outgoing_events SET lease_until = ? WHERE id = ?", [lease_until, row[0]]
            )
        return {"id": row[0], "kind": row[1], "payload": row[2], "attempts": row[3]}

    def event_delivered(self, event_id: str) -> None:
        with self.write():
            self.db.execute(
                "UPDATE outgoing_events SET delivered_at = ?, lease_until = '' WHERE id = ?",
                [utc_now(), event_id],
            )

    def event_delivery_failed(self, event_id: str, error: str, next_attempt_at: str) -> None:
        with self.write():
            self.db.execute(
                "UPDATE outgoing_events SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "lease_until = '' WHERE id = ?",
                [error[:500], next_attempt_at, event_id],
            )

    def outgoing_events(
        self, *, pending_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Events, newest first, with their delivery state."""
        where = "WHERE delivered_at = ''" if pending_only else ""
        rows = self.db.execute(
            f"SELECT id, created_at, kind, payload, delivered_at, attempts, last_error FROM outgoing_events "
            f"{where} ORDER BY created_at DESC, id DESC LIMIT ?",
            [limit],
        ).fetchall()
        keys = ("id", "created_at", "kind", "payload", "delivered_at", "attempts", "last_error")
        return [dict(zip(keys, row, strict=True), payload=json.loads(row[3])) for row in rows]

    def _erase_incident_events(self, incident_ids: list[str]) -> int:
        """Drop the events about erased incidents (asked for them, or used them); call
        inside ``self.write()``. Returns how many."""
        marks = ",".join("?" * len(incident_ids))
        return self.db.execute(
            f"DELETE FROM outgoing_events WHERE incident_ref IN ({marks}) "
            f"OR (result_kind = 'incident' AND result_id IN ({marks}))",
            [*incident_ids, *incident_ids],
        ).rowcount
