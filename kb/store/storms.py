"""Open incidents for duplicate and storm detection, and storm webhook bookkeeping."""

from __future__ import annotations

import json
from typing import Any

from kb.store.base import utc_now


class StormsMixin:
    def recent_open_incidents(self, since: str, limit: int = 20_000) -> list[dict[str, Any]]:
        """Open incidents opened (or, without an opening time, stored) since ``since``."""
        rows = self.db.execute(
            "SELECT id, title, description, product, coalesce(nullif(opened_at, ''), imported_at) AS opened "
            "FROM incidents WHERE status = 'open' AND coalesce(nullif(opened_at, ''), imported_at) >= ? "
            "ORDER BY opened LIMIT ?",
            [since, limit],
        )
        keys = ("id", "title", "description", "product", "opened")
        return [dict(zip(keys, row, strict=True)) for row in rows.fetchall()]

    def open_incidents_signature(self) -> tuple:
        """Changes whenever an open incident is added, changed or closed (cheap: an index)."""
        return tuple(
            self.db.execute(
                "SELECT count(*), max(imported_at) FROM incidents WHERE status = 'open'"
            ).fetchone()
        )

    def record_storm(self, storm: dict[str, Any]) -> bool:
        """Remember a storm; True the first time it is seen (its payload is kept current)."""
        with self.write():
            cursor = self.db.execute(
                "INSERT INTO storms (id, first_seen, payload) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
                [storm["id"], utc_now(), json.dumps(storm)],
            )
            if not cursor.rowcount:
                self.db.execute(
                    "UPDATE storms SET payload = ? WHERE id = ? AND delivered_at = ''",
                    [json.dumps(storm), storm["id"]],
                )
            return bool(cursor.rowcount)

    def claim_storm_delivery(self, now: str, lease_until: str) -> dict[str, Any] | None:
        """One undelivered storm due for a (re)try, leased to this caller so that no other
        worker posts it meanwhile; None when there is none."""
        with self.write():
            row = self.db.execute(
                "SELECT id, payload, attempts FROM storms WHERE delivered_at = '' AND next_attempt_at <= ? "
                "AND lease_until <= ? ORDER BY first_seen LIMIT 1",
                [now, now],
            ).fetchone()
            if row is None:
                return None
            self.db.execute("UPDATE storms SET lease_until = ? WHERE id = ?", [lease_until, row[0]])
        return {"id": row[0], "payload": row[1], "attempts": row[2]}

    def storm_delivered(self, storm_id: str) -> None:
        with self.write():
            self.db.execute(
                "UPDATE storms SET delivered_at = ?, lease_until = '' WHERE id = ?",
                [utc_now(), storm_id],
            )

    def storm_delivery_failed(self, storm_id: str, error: str, next_attempt_at: str) -> None:
        with self.write():
            self.db.execute(
                "UPDATE storms SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, lease_until = '' "
                "WHERE id = ?",
                [error[:500], next_attempt_at, storm_id],
            )
