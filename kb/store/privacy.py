"""The audit log, erasure of incidents, and rewriting stored text through the redactor."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from kb.errors import NotFoundError
from kb.models import INCIDENT_TEXT_FIELDS, Incident
from kb.store.base import utc_now
from kb.store.suggestions import redacted_filters
from kb.text import normalise_text

ERASED = "[erased]"
# What erasure leaves of a recorded suggestion: no text the agent typed, nor what was
# predicted from it (the results shown stay: they are ids of documents).
BLANKED_SUGGESTION = "query = ?, title = '', predicted_group = '', filters = '{}'"


def folded(text: str | None) -> str:
    """Text as erasure compares it: normalised (NFKC) and case-folded."""
    return normalise_text(text or "").casefold()


def _filter_text(filters: str | None) -> str:
    try:
        values = json.loads(filters or "{}")
    except ValueError:
        return filters or ""
    return " ".join(str(v) for v in values.values()) if isinstance(values, dict) else str(values)


# Entries are written in turn, but on a shared database by several machines whose clocks
# may differ a little: an entry dated earlier than the one before it by more than this is
# reported as back-dated.
AUDIT_CLOCK_SLACK_S = 300.0


def _seconds_between(later: str, earlier: str) -> float:
    """How far ``later`` lies before ``earlier`` (positive when it is earlier), in seconds;
    0 for a time that cannot be read."""
    try:
        return (datetime.fromisoformat(earlier) - datetime.fromisoformat(later)).total_seconds()
    except ValueError:
        return 0.0


def audit_hash(previous: str, entry: Sequence[str]) -> str:
    """SHA-256 of the previous entry's hash and this entry's fields (at, actor, action,
    target, detail), as hex."""
    text = json.dumps([previous, *entry], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PrivacyMixin:
    # --- the audit log ---------------------------------------------------------------

    def audit(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        """Append one entry (joins the caller's transaction when there is one). ``detail``
        names what was done, never the text of a record. The entry is chained: it carries
        the hash of the entry before it and its own (:func:`audit_hash`), both taken in the
        same write transaction, which every writer takes in turn."""
        with self.write():
            last = self.db.execute("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
            previous = last[0] if last else ""
            entry = [utc_now(), actor or "unknown", action, target[:500], detail[:2000]]
            self.db.execute(
                "INSERT INTO audit_log (at, actor, action, target, detail, prev_hash, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [*entry, previous, audit_hash(previous, entry)],
            )

    def verify_audit_chain(self, *, expect_head: str = "") -> dict[str, Any]:
        """Walk the audit log in order and check every link: each entry's hash matches its
        content, and names the entry before it. Returns the entries read, how many came
        before chaining began (written by an older version), the head (the last entry's id
        and hash: kept elsewhere, it shows later whether the log was rewritten from some
        point on) and the problems found, each naming its entry. ``expect_head``: a head
        printed earlier; a problem unless that entry is still in the chain unchanged."""
        problems: list[dict[str, Any]] = []
        count = unchained = 0
        previous_hash, previous_id, previous_at, chained = "", None, "", False
        head_seen = not expect_head
        after = 0
        while True:
            rows = self.db.execute(
                "SELECT id, at, actor, action, target, detail, prev_hash, hash FROM audit_log WHERE id > ? "
                "ORDER BY id LIMIT 5000",
                [after],
            ).fetchall()
            if not rows:
                break
            for entry_id, at, actor, action, target, detail, prev_hash, own_hash in rows:
                count += 1
                after = entry_id
                if not own_hash:
                    if chained:
                        problems.append(
                            {"id": entry_id, "problem": "not chained: added outside kb"}
                        )
                    else:
                        unchained += 1
                    continue
                if own_hash != audit_hash(prev_hash, [at, actor, action, target, detail]):
                    problems.append(
                        {"id": entry_id, "problem": "its content does not match its hash: edited"}
                    )
                elif prev_hash != previous_hash:
                    where = (
                        f"after entry {previous_id}" if previous_id is not None else "at the start"
                    )
                    problems.append(
                        {
                            "id": entry_id,
                            "problem": f"does not follow the entry before it: entries "
                            f"missing or slipped in {where}",
                        }
                    )
                elif previous_at and _seconds_between(at, previous_at) > AUDIT_CLOCK_SLACK_S:
                    problems.append(
                        {
                            "id": entry_id,
                            "problem": f"dated {at}, before the entry before it "
                            f"({previous_at}): back-dated",
                        }
                    )
                chained = True
                previous_hash, previous_id, previous_at = own_hash, entry_id, at
                if expect_head and own_hash == expect_head:
                    head_seen = True
        if not head_seen:
            problems.append(
                {
                    "id": None,
                    "problem": f"the expected head {expect_head} is not in the chain: the log "
                    "was rewritten or cut back since it was taken",
                }
            )
        return {
            "entries": count,
            "before_chaining": unchained,
            "ok": not problems,
            "problems": problems,
            "head": {"id": previous_id, "hash": previous_hash},
        }

    def audit_entries(
        self, *, since: str = "", action: str = "", limit: int = 1000
    ) -> list[dict[str, Any]]:
        sql, args = (
            "SELECT id, at, actor, action, target, detail FROM audit_log WHERE at >= ?",
            [since],
        )
        if action:
            sql += " AND action = ?"
            args.append(action)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        rows = self.db.execute(sql, args).fetchall()
        keys = ("id", "at", "actor", "action", "target", "detail")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # --- erasure -----------------------------------------------------------------------

    def erase_incidents(self, ids: Sequence[str], *, actor: str) -> dict[str, Any]:
        """Remove incidents and every row that holds their text, in one transaction: the
        incident, its chunks (and so its full-text entries), vectors no other chunk uses,
        the text of suggestions asked for it, and draft articles started from it. The
        erasure is logged (who, when, which ids) and stays "pending" until the caller has
        also rebuilt the index files and compacted the database (:meth:`finish_erasure`).
        Raises NotFoundError when none of the ids is stored."""
        ids = list(dict.fromkeys(i for i in ids if i))
        with self.write():
            found = [
                i
                for i in ids
                if self.db.execute("SELECT 1 FROM incidents WHERE id = ?", [i]).fetchone()
            ]
            if not found:
                raise NotFoundError(f"no incident with id {', '.join(map(repr, ids)) or '(none)'}")
            now = utc_now()
            hashes: set[str] = set()
            drafts = self._drafts_started_from(found)
            for doc_id in found:
                hashes |= self._chunk_hashes("incident", doc_id)
                self._remove_chunks("incident", doc_id, now)
                self.db.execute(
                    "DELETE FROM indexed_docs WHERE doc_kind = 'incident' AND doc_id = ?", [doc_id]
                )
                self.db.execute("DELETE FROM incidents WHERE id = ?", [doc_id])
            draft_paths = self._remove_drafts(drafts, now, hashes)
            vectors = self._drop_unused_vectors(hashes)
            marks = ",".join("?" * len(found))
            suggestions = self.db.execute(
                f"UPDATE suggestions SET {BLANKED_SUGGESTION} WHERE incident_ref IN ({marks})",
                [ERASED, *found],
            ).rowcount
            self._erase_incident_events(found)
            self.db.execute(
                f"DELETE FROM suggestion_previews WHERE incident_ref IN ({marks})", found
            )
            erasure_id = self.db.execute(
                "INSERT INTO erasures (started_at, actor, doc_ids, state, finished_at) "
                "VALUES (?, ?, ?, 'pending', '') RETURNING id",
                [now, actor, json.dumps(found)],
            ).fetchone()[0]
            self.audit(
                actor,
                "erase",
                ",".join(found),
                f"erasure {erasure_id}: {len(found)} incident(s), {len(drafts)} draft(s), "
                f"{suggestions} suggestion text(s), {vectors} cached vector(s)",
            )
        missing = [i for i in ids if i not in found]
        return {
            "erasure": erasure_id,
            "erased": found,
            "missing": missing,
            "drafts": drafts,
            "draft_paths": draft_paths,
            "suggestions_blanked": suggestions,
            "vectors_removed": vectors,
        }

    def _remove_drafts(self, drafts: Sequence[str], now: str, hashes: set[str]) -> list[str]:
        """Delete draft articles with their chunks and versions; adds their chunks' text
        hashes to ``hashes`` and returns the paths of their files."""
        paths = [
            row[0]
            for article_id in drafts
            for row in self.db.execute(
                "SELECT path FROM articles WHERE id = ? AND path != ''", [article_id]
            ).fetchall()
        ]
        for article_id in drafts:
            hashes |= self._chunk_hashes("article", article_id)
            self._remove_chunks("article", article_id, now)
            self.db.execute(
                "DELETE FROM indexed_docs WHERE doc_kind = 'article' AND doc_id = ?", [article_id]
            )
            self.db.execute("DELETE FROM article_versions WHERE article_id = ?", [article_id])
            self.db.execute("DELETE FROM article_flags WHERE article_id = ?", [article_id])
            self.db.execute("DELETE FROM articles WHERE id = ?", [article_id])
        return paths

    def _chunk_hashes(self, kind: str, doc_id: str) -> set[str]:
        rows = self.db.execute(
            "SELECT text_hash FROM chunks WHERE doc_kind = ? AND doc_id = ?", [kind, doc_id]
        )
        return {row[0] for row in rows.fetchall()}

    def _drop_unused_vectors(self, hashes: set[str]) -> int:
        removed = 0
        for text_hash in hashes:
            if self.db.execute(
                "SELECT 1 FROM chunks WHERE text_hash = ? LIMIT 1", [text_hash]
            ).fetchone():
                continue  # the same text is still a chunk of another document
            removed += self.db.execute(
                "DELETE FROM vectors WHERE text_hash = ?", [text_hash]
            ).rowcount
        return removed

    def _drafts_started_from(self, incident_ids: Sequence[str]) -> list[str]:
        """Draft articles whose text names one of these incidents as where they came from
        (the agent page writes "incident <id>" into a draft it starts)."""
        found = []
        for row in self.db.execute(
            "SELECT id, body FROM articles WHERE status = 'draft'"
        ).fetchall():
            if any(f"incident {incident_id}" in (row[1] or "") for incident_id in incident_ids):
                found.append(row[0])
        return found

    def pending_erasures(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, started_at, actor, doc_ids FROM erasures WHERE state = 'pending' ORDER BY id"
        ).fetchall()
        return [
            {"id": r[0], "started_at": r[1], "actor": r[2], "doc_ids": json.loads(r[3])}
            for r in rows
        ]

    def finish_erasure(self, erasure_id: int) -> None:
        with self.write():
            self.db.execute(
                "UPDATE erasures SET state = 'done', finished_at = ? WHERE id = ?",
                [utc_now(), erasure_id],
            )

    def incidents_mentioning(self, needle: str) -> list[str]:
        """Ids of incidents whose stored text holds ``needle``, in any of their free-text
        fields (INCIDENT_TEXT_FIELDS), compared normalised (NFKC) and in any letter case:
        "X@Example.COM" and a full-width "ｘ＠ｅｘａｍｐｌｅ．ｃｏｍ" both hold x@example.com."""
        wanted = folded(needle)
        columns = ", ".join(INCIDENT_TEXT_FIELDS)
        rows = self.db.execute(f"SELECT id, {columns} FROM incidents ORDER BY id")
        return [
            row[0]
            for row in rows.fetchall()
            if wanted and any(wanted in folded(v) for v in row[1:])
        ]

    def records_mentioning(self, needle: str) -> dict[str, Any]:
        """Everything stored that holds ``needle`` (compared as incidents_mentioning does):
        incident ids; ids of recorded suggestions whose query, title, incident id, filters
        or predicted group hold it; feedback rows whose agent holds it, as (suggestion id,
        agent); ids of draft articles whose title, text, product or id hold it."""
        wanted = folded(needle)
        if not wanted:
            return {"incidents": [], "suggestions": [], "feedback": [], "drafts": []}
        suggestions = [
            row[0]
            for row in self.db.execute(
                "SELECT id, query, title, incident_ref, filters, predicted_group FROM suggestions ORDER BY id"
            ).fetchall()
            if any(wanted in folded(v) for v in (*row[1:4], _filter_text(row[4]), row[5]))
        ]
        feedback = [
            (row[0], row[1])
            for row in self.db.execute(
                "SELECT DISTINCT suggestion_id, agent FROM feedback_events UNION "
                "SELECT suggestion_id, agent FROM feedback ORDER BY 1, 2"
            ).fetchall()
            if wanted in folded(row[1])
        ]
        drafts = [
            row[0]
            for row in self.db.execute(
                "SELECT id, title, body, product FROM articles WHERE status = 'draft' ORDER BY id"
            ).fetchall()
            if any(wanted in folded(v) for v in row)
        ]
        return {
            "incidents": self.incidents_mentioning(needle),
            "suggestions": suggestions,
            "feedback": feedback,
            "drafts": drafts,
        }

    def erase_records(
        self,
        *,
        suggestions: Sequence[str] = (),
        feedback: Sequence[tuple[str, str]] = (),
        drafts: Sequence[str] = (),
        actor: str,
    ) -> dict[str, Any]:
        """Erase what records_mentioning found outside incidents, in one transaction: the
        suggestions' typed text is blanked (as incident erasure blanks it, and the incident
        id they named too), the feedback
        rows' agent becomes "[erased]" and a random tag (one row per suggestion and agent),
        the drafts are deleted. Leaves a "pending" erasure, finished as incident erasures
        are (index without the drafts, database compacted); the audit log names counts and
        opaque ids only."""
        now = utc_now()
        with self.write():
            blanked = sum(
                self.db.execute(
                    f"UPDATE suggestions SET {BLANKED_SUGGESTION}, incident_ref = '' WHERE id = ?",
                    [ERASED, sid],
                ).rowcount
                for sid in suggestions
            )
            renamed = 0
            for suggestion_id, agent in feedback:
                alias = f"{ERASED} {secrets.token_hex(4)}"
                renamed += self.db.execute(
                    "UPDATE feedback SET agent = ? WHERE suggestion_id = ? AND agent = ?",
                    [alias, suggestion_id, agent],
                ).rowcount
                self.db.execute(
                    "UPDATE feedback_events SET agent = ? WHERE suggestion_id = ? AND agent = ?",
                    [alias, suggestion_id, agent],
                )
            hashes: set[str] = set()
            drafts = [
                d
                for d in drafts
                if self.db.execute("SELECT 1 FROM articles WHERE id = ?", [d]).fetchone()
            ]
            draft_paths = self._remove_drafts(drafts, now, hashes)
            vectors = self._drop_unused_vectors(hashes)
            erased = (
                [f"article:{d}" for d in drafts]
                + [f"suggestion:{sid}" for sid in suggestions]
                + [f"feedback:{sid}" for sid, _ in feedback]
            )
            erasure_id = None
            if erased:  # the index and the freed pages still hold the text until it is finished
                erasure_id = self.db.execute(
                    "INSERT INTO erasures (started_at, actor, doc_ids, state, finished_at) "
                    "VALUES (?, ?, ?, 'pending', '') RETURNING id",
                    [now, actor, json.dumps(erased)],
                ).fetchone()[0]
                self.audit(
                    actor,
                    "erase",
                    ",".join(drafts),
                    f"erasure {erasure_id}: {len(drafts)} draft(s), {blanked} suggestion text(s), "
                    f"{renamed} feedback agent(s), {vectors} cached vector(s)",
                )
        return {
            "erasure": erasure_id,
            "drafts": drafts,
            "draft_paths": draft_paths,
            "suggestions_blanked": blanked,
            "feedback_agents_erased": renamed,
            "vectors_removed": vectors,
        }

    def compact(self) -> None:
        """Make deleted text unrecoverable from the files: merge the full-text index's
        segments, rebuild the database without free pages, and empty the WAL."""
        self.db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')")
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # --- redacting what was stored before --------------------------------------------

    def iter_incident_batches(self, size: int = 500) -> Iterator[list[Incident]]:
        """Every stored incident, ``size`` at a time (safe to write between batches)."""
        ids = [row[0] for row in self.db.execute("SELECT id FROM incidents ORDER BY id").fetchall()]
        for start in range(0, len(ids), size):
            yield list(self.iter_incidents(ids[start : start + size]))

    def redact_stored_suggestions(self) -> int:
        """Pass recorded queries through the redactor (query, title, incident id, filters,
        predicted group), and the agents named in feedback; returns how many suggestions
        changed."""
        redact = self.redactor.redact
        changed = 0
        with self.write():
            rows = self.db.execute(
                "SELECT id, query, title, incident_ref, filters, predicted_group FROM suggestions"
            ).fetchall()
            for sid, query, title, ref, filters, group in rows:
                old = (query or "", title or "", ref or "", filters or "{}", group or "")
                new = (
                    redact(old[0]),
                    redact(old[1]),
                    redact(old[2]),
                    json.dumps(redacted_filters(json.loads(old[3]), redact)),
                    redact(old[4]),
                )
                if new[3] == json.dumps(json.loads(old[3])):
                    new = (*new[:3], old[3], new[4])  # the same filters, spelled as stored
                if new != old:
                    self.db.execute(
                        "UPDATE suggestions SET query = ?, title = ?, incident_ref = ?, filters = ?, "
                        "predicted_group = ? WHERE id = ?",
                        [*new, sid],
                    )
                    changed += 1
            for table in ("feedback", "feedback_events"):
                for (agent,) in self.db.execute(f"SELECT DISTINCT agent FROM {table}").fetchall():
                    if redact(agent or "") != (agent or ""):
                        self._rename_agent(table, agent, redact(agent))
        return changed

    def _rename_agent(self, table: str, agent: str, new: str) -> None:
        """Rename an agent in feedback rows; where the new name is already that of another
        row of the same suggestion (two addresses both became "[email]"), keep the newer."""
        if table == "feedback_events":
            self.db.execute("UPDATE feedback_events SET agent = ? WHERE agent = ?", [new, agent])
            return
        for (sid,) in self.db.execute(
            "SELECT suggestion_id FROM feedback WHERE agent = ?", [agent]
        ).fetchall():
            clash = self.db.execute(
                "SELECT updated_at FROM feedback WHERE suggestion_id = ? AND agent = ?", [sid, new]
            ).fetchone()
            mine = self.db.execute(
                "SELECT updated_at FROM feedback WHERE suggestion_id = ? AND agent = ?",
                [sid, agent],
            ).fetchone()
            if clash and clash[0] >= mine[0]:
                self.db.execute(
                    "DELETE FROM feedback WHERE suggestion_id = ? AND agent = ?", [sid, agent]
                )
                continue
            if clash:
                self.db.execute(
                    "DELETE FROM feedback WHERE suggestion_id = ? AND agent = ?", [sid, new]
                )
            self.db.execute(
                "UPDATE feedback SET agent = ? WHERE suggestion_id = ? AND agent = ?",
                [new, sid, agent],
            )

    def keep_latest_article_version(self, article_id: str) -> int:
        """Drop an article's older stored versions (they hold text since redacted)."""
        with self.write():
            return self.db.execute(
                "DELETE FROM article_versions WHERE article_id = ? AND version < "
                "(SELECT MAX(version) FROM article_versions WHERE article_id = ?)",
                [article_id, article_id],
            ).rowcount

    def keep_latest_profiles(self) -> int:
        """Drop every ranking profile but the newest of each model (an older one was fitted
        on texts that have since been erased or redacted)."""
        with self.write():
            return self.db.execute(
                "DELETE FROM ranking_profiles WHERE id NOT IN (SELECT MAX(id) FROM ranking_profiles GROUP BY model_id)"
            ).rowcount

    def prune_unused_vectors(self) -> int:
        """Drop cached vectors of texts that are no longer a chunk of anything."""
        with self.write():
            return self.db.execute(
                "DELETE FROM vectors WHERE text_hash NOT IN (SELECT text_hash FROM chunks)"
            ).rowcount
