"""Read-only aggregates over recorded choices, for KCS metrics and the manager's report.

Every verb takes ``since``: an ISO 8601 UTC timestamp (``YYYY-MM-DDTHH:MM:SS...``); only
what happened at or after it counts. An incident happened when it was resolved (else
opened, else imported). Timestamps are compared as text, which orders ISO 8601 correctly.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

CLOSED_INCIDENT_SQL = "i.status IN ('resolved', 'closed')"
INCIDENT_TIME_SQL = "coalesce(nullif(i.resolved_at, ''), nullif(i.opened_at, ''), i.imported_at)"
LINKED_SQL = "coalesce(i.article_id, '') != ''"


def n(condition: str) -> str:
    """1 where ``condition`` holds, else 0: summed or maxed the same way on both engines
    (PostgreSQL neither sums nor compares booleans with numbers)."""
    return f"(CASE WHEN {condition} THEN 1 ELSE 0 END)"


_USED = n("outcome = 'used'")
_NONE_HELPED = n("outcome = 'none_helped'")


def _week(timestamp: str) -> str:
    """``YYYY-Www`` of an ISO time: weeks start on Monday, week 00 before the first one."""
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).strftime("%Y-W%W")
    except (ValueError, AttributeError):
        return ""


# Suggestions made for a known incident, with what the agents chose on them.
_CHOICES_BY_INCIDENT = f"""
    SELECT s.incident_ref AS incident_id,
           max({n("f.outcome = 'used' AND f.used_kind = 'article'")}) AS used_article,
           max({n("f.outcome = 'used'")}) AS used_any
    FROM suggestions s JOIN feedback f ON f.suggestion_id = s.id
    WHERE s.incident_ref != ''
    GROUP BY s.incident_ref
"""


class MetricsMixin:
    """Aggregates for ``kb report`` and ``GET /api/v1/metrics``; no writes."""

    def incident_knowledge_counts(self, since: str) -> dict[str, int]:
        """Closed incidents in the window, how many were linked to an article (its
        ``article_id`` or a used article result) and how many were solved with existing
        knowledge (linked, or any used result)."""
        row = self.db.execute(
            f"""
            SELECT count(*),
                   coalesce(sum({n(LINKED_SQL + " OR coalesce(c.used_article, 0) = 1")}), 0),
                   coalesce(sum({n(LINKED_SQL + " OR coalesce(c.used_any, 0) = 1")}), 0),
                   coalesce(sum({n(LINKED_SQL)}), 0)
            FROM incidents i LEFT JOIN ({_CHOICES_BY_INCIDENT}) c ON c.incident_id = i.id
            WHERE {CLOSED_INCIDENT_SQL} AND {INCIDENT_TIME_SQL} >= ?
            """,
            [since],
        ).fetchone()
        return {"closed": row[0], "linked": row[1], "known": row[2], "linked_in_record": row[3]}

    def article_reuse(self, since: str) -> dict[str, dict[str, int]]:
        """Per article: closed incidents linked to it, and "used" choices naming it that
        are not already counted through a linked incident."""
        out: dict[str, dict[str, int]] = {}
        linked = self.db.execute(
            f"""
            SELECT i.article_id, count(*) FROM incidents i
            WHERE {CLOSED_INCIDENT_SQL} AND {LINKED_SQL} AND {INCIDENT_TIME_SQL} >= ?
            GROUP BY i.article_id
            """,
            [since],
        )
        for article_id, count in linked.fetchall():
            out.setdefault(article_id, {"linked_incidents": 0, "used": 0})["linked_incidents"] = (
                count
            )
        used = self.db.execute(
            f"""
            SELECT f.used_id, count(*) FROM feedback f JOIN suggestions s ON s.id = f.suggestion_id
            WHERE f.outcome = 'used' AND f.used_kind = 'article' AND f.updated_at >= ?
              AND NOT EXISTS (SELECT 1 FROM incidents i WHERE s.incident_ref != ''
                              AND i.id = s.incident_ref AND i.article_id = f.used_id
                              AND {CLOSED_INCIDENT_SQL} AND {INCIDENT_TIME_SQL} >= ?)
            GROUP BY f.used_id
            """,
            [since, since],
        )
        for article_id, count in used.fetchall():
            out.setdefault(article_id, {"linked_incidents": 0, "used": 0})["used"] = count
        return out

    def feedback_totals(self, since: str) -> dict[str, int]:
        """Suggestions made in the window, and the choices recorded in it."""
        suggestions = self.db.execute(
            f"""
            SELECT count(*), coalesce(sum(no_good_match), 0),
                   coalesce(sum({n("EXISTS (SELECT 1 FROM feedback f WHERE f.suggestion_id = s.id)")}), 0)
            FROM suggestions s WHERE s.created_at >= ?
            """,
            [since],
        ).fetchone()
        choices = self.db.execute(
            f"""
            SELECT count(*), coalesce(sum({n("outcome = 'used'")}), 0),
                   coalesce(sum({n("outcome = 'none_helped'")}), 0)
            FROM feedback WHERE updated_at >= ?
            """,
            [since],
        ).fetchone()
        return {
            "suggestions": suggestions[0],
            "no_good_match": suggestions[1],
            "suggestions_with_feedback": suggestions[2],
            "feedback": choices[0],
            "used": choices[1],
            "none_helped": choices[2],
        }

    def acceptance_by_rank(self, since: str) -> dict[int, int]:
        """How many "used" choices picked the result shown at each rank."""
        rows = self.db.execute(
            """
            SELECT used_rank, count(*) FROM feedback
            WHERE outcome = 'used' AND used_rank IS NOT NULL AND updated_at >= ?
            GROUP BY used_rank ORDER BY used_rank
            """,
            [since],
        )
        return {int(rank): count for rank, count in rows.fetchall()}

    def daily_activity(self, since: str) -> dict[str, dict[str, int]]:
        """Per UTC day (``YYYY-MM-DD``): suggestions, flagged ones, choices, closed incidents."""
        days: dict[str, dict[str, int]] = {}

        def put(day: str, **values: int) -> None:
            slot = days.setdefault(
                day,
                {
                    "suggestions": 0,
                    "no_good_match": 0,
                    "used": 0,
                    "none_helped": 0,
                    "incidents_closed": 0,
                },
            )
            slot.update(values)

        for day, count, flagged in self.db.execute(
            "SELECT substr(created_at, 1, 10), count(*), sum(no_good_match) FROM suggestions "
            "WHERE created_at >= ? GROUP BY 1",
            [since],
        ).fetchall():
            put(day, suggestions=count, no_good_match=flagged or 0)
        for day, used, none in self.db.execute(
            f"SELECT substr(updated_at, 1, 10), sum({_USED}), sum({_NONE_HELPED}) "
            "FROM feedback WHERE updated_at >= ? GROUP BY 1",
            [since],
        ).fetchall():
            put(day, used=used or 0, none_helped=none or 0)
        for day, count in self.db.execute(
            f"SELECT substr({INCIDENT_TIME_SQL}, 1, 10), count(*) FROM incidents i "
            f"WHERE {CLOSED_INCIDENT_SQL} AND {INCIDENT_TIME_SQL} >= ? GROUP BY 1",
            [since],
        ).fetchall():
            put(day, incidents_closed=count)
        return days

    def gap_suggestions(self, since: str, limit: int = 2000) -> list[dict[str, Any]]:
        """Suggestions where no result helped: an agent said so, or the service flagged no
        good match and no result was used. Newest first."""
        rows = self.db.execute(
            """
            SELECT s.id, s.query, s.created_at, s.no_good_match,
                   EXISTS (SELECT 1 FROM feedback f WHERE f.suggestion_id = s.id
                           AND f.outcome = 'none_helped') AS none_helped
            FROM suggestions s
            WHERE s.created_at >= ?
              AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.suggestion_id = s.id
                              AND f.outcome = 'used')
              AND (s.no_good_match = 1 OR EXISTS (SELECT 1 FROM feedback f
                   WHERE f.suggestion_id = s.id AND f.outcome = 'none_helped'))
            ORDER BY s.created_at DESC LIMIT ?
            """,
            [since, limit],
        )
        return [
            {
                "suggestion_id": r[0],
                "query": r[1],
                "created_at": r[2],
                "no_good_match": bool(r[3]),
                "none_helped": bool(r[4]),
            }
            for r in rows.fetchall()
        ]

    def article_exposure(self, since: str) -> dict[str, dict[str, int]]:
        """Per article: suggestions in the window that showed it, how many of those got a
        choice, and how many times it was passed over: the agent used a result ranked
        below it, or said none helped."""
        feedback: dict[str, list[tuple[str, str, int | None]]] = {}
        for sid, outcome, used_id, used_rank in self.db.execute(
            "SELECT f.suggestion_id, f.outcome, f.used_id, f.used_rank FROM feedback f "
            "JOIN suggestions s ON s.id = f.suggestion_id WHERE s.created_at >= ?",
            [since],
        ).fetchall():
            feedback.setdefault(sid, []).append((outcome, used_id, used_rank))
        out: dict[str, dict[str, int]] = {}
        rows = self.db.execute("SELECT id, results FROM suggestions WHERE created_at >= ?", [since])
        for sid, results in rows.fetchall():
            try:
                shown_results = json.loads(results or "[]")
            except ValueError:
                continue
            ranks: dict[str, Any] = {}
            for result in shown_results if isinstance(shown_results, list) else []:
                if (
                    isinstance(result, dict)
                    and result.get("kind") == "article"
                    and result.get("id")
                ):
                    rank = result.get("rank")
                    old = ranks.get(result["id"])
                    ranks[result["id"]] = (
                        rank if old is None or (rank is not None and rank < old) else old
                    )
            choices = feedback.get(sid, [])
            for article_id, rank in ranks.items():
                used = any(o == "used" and u == article_id for o, u, _ in choices)
                passed_over = any(
                    o == "none_helped"
                    or (o == "used" and r is not None and rank is not None and r > rank)
                    for o, _, r in choices
                )
                slot = out.setdefault(article_id, {"shown": 0, "judged": 0, "skipped": 0})
                slot["shown"] += 1
                slot["judged"] += 1 if choices else 0
                slot["skipped"] += 1 if passed_over and not used else 0
        return out

    def article_activity(self) -> list[dict[str, Any]]:
        """Every article not archived, with when it was first stored, last used in a
        choice, and last named by a closed incident (all time)."""
        rows = self.db.query(
            f"""
            SELECT a.id, a.title, a.status, a.audience, a.owner, a.path, a.review_by, a.updated,
                   (SELECT min(v.changed_at) FROM article_versions v WHERE v.article_id = a.id)
                       AS first_stored,
                   (SELECT max(f.updated_at) FROM feedback f WHERE f.outcome = 'used'
                    AND f.used_kind = 'article' AND f.used_id = a.id) AS last_used,
                   (SELECT max({INCIDENT_TIME_SQL}) FROM incidents i
                    WHERE {CLOSED_INCIDENT_SQL} AND i.article_id = a.id) AS last_linked
            FROM articles a WHERE a.status != 'archived' ORDER BY a.id
            """
        )
        return list(rows)

    def article_chunk_rows(self) -> list[dict[str, Any]]:
        """(id, doc_id, position, heading) of every indexed article chunk."""
        return list(
            self.db.query(
                "SELECT id, doc_id, position, heading FROM chunks WHERE doc_kind = 'article' "
                "ORDER BY doc_id, position"
            )
        )

    def routing_outcomes(self, since: str) -> list[tuple[str, str, str, str]]:
        """(week, predicted group, final group, whether triage was sure: "yes", "no" or "")
        for suggestions made for an incident that has since been resolved with an assignment
        group; the latest suggestion per incident."""
        rows = self.db.execute(
            """
            SELECT s.created_at, s.predicted_group, i.assignment_group, s.predicted_sure
            FROM suggestions s JOIN incidents i ON i.id = s.incident_ref
            WHERE s.created_at >= ? AND s.incident_ref != '' AND s.predicted_group != ''
              AND i.status IN ('resolved', 'closed') AND i.assignment_group != ''
              AND s.created_at = (SELECT max(created_at) FROM suggestions t WHERE t.incident_ref = s.incident_ref)
            ORDER BY 1
            """,
            [since],
        )
        return [(_week(row[0]), row[1], row[2], row[3] or "") for row in rows.fetchall()]

    def escalation_by_category(self, since: str) -> list[dict[str, Any]]:
        """Per category of incidents resolved since ``since`` that say whether they were
        escalated: how many, and how many left the first line."""
        rows = self.db.execute(
            """
            SELECT coalesce(nullif(category, ''), '(none)'), count(*), sum(CASE WHEN escalated = 'yes' THEN 1 ELSE 0 END)
            FROM incidents WHERE status IN ('resolved', 'closed') AND escalated IN ('yes', 'no')
              AND coalesce(nullif(resolved_at, ''), imported_at) >= ?
            GROUP BY 1 ORDER BY 2 DESC LIMIT 50
            """,
            [since],
        )
        return [
            {
                "category": r[0],
                "incidents": r[1],
                "escalated": r[2] or 0,
                "rate": round((r[2] or 0) / r[1], 4) if r[1] else None,
            }
            for r in rows.fetchall()
        ]

    def article_state_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, count(*) FROM articles GROUP BY status")
        return dict(rows.fetchall())
