"""Flags agents raise on an article they met in a result (wrong, outdated, unclear), open
until a knowledge manager resolves them. The note is redacted before it is stored."""

from __future__ import annotations

from typing import Any

from kb.errors import NotFoundError, ValidationError
from kb.store.base import utc_now

FLAG_KINDS = ("wrong", "outdated", "unclear")
MAX_FLAG_NOTE_CHARS = 2000
_COLUMNS = ("id", "article_id", "kind", "note", "agent", "created_at", "resolved_at", "resolved_by")


class FlagsMixin:
    def flag_article(self, article_id: str, kind: str, note: str, *, agent: str) -> int:
        """Record a flag; returns its id. One person has at most one open flag on an
        article: flagging it again replaces the kind and note (so one person cannot make
        an article look worse by repeating themselves). Raises ValidationError for an
        unknown kind, NotFoundError for an unknown article."""
        if kind not in FLAG_KINDS:
            raise ValidationError(f"unknown flag {kind!r}; choose one of {', '.join(FLAG_KINDS)}")
        note = self.redactor.redact(note.strip()[:MAX_FLAG_NOTE_CHARS])
        agent = self.redactor.redact(agent or "anonymous")  # an integration names the agent freely
        with self.write():
            if (
                self.db.execute("SELECT 1 FROM articles WHERE id = ?", [article_id]).fetchone()
                is None
            ):
                raise NotFoundError(f"no article with id {article_id!r}")
            mine = self.db.execute(
                "SELECT id FROM article_flags WHERE article_id = ? AND agent = ? AND resolved_at = ''",
                [article_id, agent],
            ).fetchone()
            if mine is not None:
                self.db.execute(
                    "UPDATE article_flags SET kind = ?, note = ?, created_at = ? WHERE id = ?",
                    [kind, note, utc_now(), mine[0]],
                )
            else:
                self.db.execute(
                    "INSERT INTO article_flags (article_id, kind, note, agent, created_at) VALUES (?, ?, ?, ?, ?)",
                    [article_id, kind, note, agent, utc_now()],
                )
            row = self.db.execute(
                "SELECT max(id) FROM article_flags WHERE article_id = ? AND agent = ?",
                [article_id, agent],
            ).fetchone()
            self.audit(agent, "article flag", f"article:{article_id}", kind)
            return int(row[0])

    def article_flags(
        self, article_id: str | None = None, *, open_only: bool = True
    ) -> list[dict[str, Any]]:
        """Flags, newest first: one article's or every article's; open ones unless told."""
        sql, args = f"SELECT {', '.join(_COLUMNS)} FROM article_flags WHERE 1 = 1", []
        if article_id is not None:
            sql += " AND article_id = ?"
            args.append(article_id)
        if open_only:
            sql += " AND resolved_at = ''"
        rows = self.db.execute(sql + " ORDER BY id DESC", args).fetchall()
        return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]

    def open_flag_counts(self) -> dict[str, dict[str, int]]:
        """Per article id, how many open flags of each kind."""
        out: dict[str, dict[str, int]] = {}
        rows = self.db.execute(
            "SELECT article_id, kind, count(*) FROM article_flags WHERE resolved_at = '' "
            "GROUP BY article_id, kind"
        ).fetchall()
        for article_id, kind, count in rows:
            out.setdefault(article_id, {})[kind] = int(count)
        return out

    def resolve_article_flags(self, article_id: str, *, by: str) -> int:
        """Close every open flag of an article; returns how many."""
        with self.write():
            cursor = self.db.execute(
                "UPDATE article_flags SET resolved_at = ?, resolved_by = ? WHERE article_id = ? AND resolved_at = ''",
                [utc_now(), by, article_id],
            )
            if cursor.rowcount:
                self.audit(
                    by,
                    "article flags resolve",
                    f"article:{article_id}",
                    f"{cursor.rowcount} flag(s)",
                )
            return cursor.rowcount
