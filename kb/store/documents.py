"""Articles and incidents: upserts that detect change by content hash, and versions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kb.errors import NotFoundError
from kb.models import INCIDENT_FIELDS, INCIDENT_TEXT_FIELDS, Article, Incident
from kb.store.base import utc_now

_BATCH = 500

ARTICLE_FIELDS = (
    "id",
    "title",
    "body",
    "status",
    "audience",
    "product",
    "category",
    "tags",
    "owner",
    "review_by",
    "updated",
    "path",
)


@dataclass
class UpsertCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    changed_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}


def _batches(items: Sequence, size: int = _BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def article_from_row(row: dict[str, Any]) -> Article:
    data = {k: row.get(k) or "" for k in ARTICLE_FIELDS}
    data["tags"] = json.loads(row["tags"]) if row.get("tags") else []
    return Article(**data)


def incident_from_row(row: dict[str, Any]) -> Incident:
    return Incident(**{k: row.get(k) or "" for k in INCIDENT_FIELDS})


class DocumentsMixin:
    """Verbs on the articles and incidents tables."""

    def _existing_hashes(self, table: str, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for batch in _batches(list(ids)):
            marks = ",".join("?" * len(batch))
            rows = self.db.execute(
                f"SELECT id, content_hash FROM [{table}] WHERE id IN ({marks})", list(batch)
            )
            found.update(dict(rows.fetchall()))
        return found

    # --- incidents -------------------------------------------------------------------

    def redacted_incident(self, incident: Incident) -> Incident:
        """The incident with every free-text field (INCIDENT_TEXT_FIELDS) normalised and
        passed through the store's redactor."""
        redact = self.redactor.redact
        if not self.redactor.enabled:
            return incident
        return replace(
            incident, **{name: redact(getattr(incident, name)) for name in INCIDENT_TEXT_FIELDS}
        )

    def upsert_incidents(self, incidents: Sequence[Incident], source: str = "") -> UpsertCounts:
        """Insert or update incidents in one transaction (their text redacted first, see
        kb.redaction); unchanged ones are not touched."""
        counts = UpsertCounts()
        now = utc_now()
        with self.write():
            existing = self._existing_hashes("incidents", [i.id for i in incidents])
            rows = []
            for incident in incidents:
                incident = self.redacted_incident(incident)
                digest = incident.fingerprint()
                old = existing.get(incident.id)
                if old == digest:
                    counts.unchanged += 1
                    continue
                if old is None:
                    counts.inserted += 1
                else:
                    counts.updated += 1
                counts.changed_ids.append(incident.id)
                existing[incident.id] = digest
                row = incident.to_dict()
                row.update(content_hash=digest, source=source, imported_at=now)
                rows.append(row)
            if rows:
                self.db["incidents"].upsert_all(rows, pk="id")
        return counts

    def names_in_use(self, field: str) -> list[str]:
        """The distinct product (or category) names of articles and incidents, articles'
        first (their spelling is curated)."""
        if field not in ("product", "category"):
            raise ValueError(field)
        names: list[str] = []
        for table in ("articles", "incidents"):
            names += [
                row[0]
                for row in self.db.execute(
                    f"SELECT DISTINCT {field} FROM {table} WHERE {field} != ''"
                ).fetchall()
            ]
        return list(dict.fromkeys(names))

    def get_incident(self, incident_id: str) -> Incident:
        rows = list(self.db["incidents"].rows_where("id = ?", [incident_id]))
        if not rows:
            raise NotFoundError(f"no incident with id {incident_id!r}")
        return incident_from_row(rows[0])

    def iter_incidents(self, ids: Iterable[str] | None = None) -> Iterator[Incident]:
        if ids is None:
            for row in self.db["incidents"].rows_where(order_by="id"):
                yield incident_from_row(row)
            return
        for batch in _batches(list(ids)):
            marks = ",".join("?" * len(batch))
            for row in self.db["incidents"].rows_where(f"id IN ({marks})", list(batch)):
                yield incident_from_row(row)

    def count_incidents(self) -> int:
        return self.db["incidents"].count

    # --- articles --------------------------------------------------------------------

    def upsert_articles(self, articles: Sequence[Article], changed_by: str = "") -> UpsertCounts:
        """Insert or update articles in one transaction, keeping every change as a version."""
        counts = UpsertCounts()
        now = utc_now()
        with self.write():
            existing = {
                row["id"]: row
                for batch in _batches([a.id for a in articles])
                for row in self.db["articles"].rows_where(
                    f"id IN ({','.join('?' * len(batch))})",
                    list(batch),
                    select="id, content_hash, version",
                )
            }
            for article in articles:
                digest = article.fingerprint()
                old = existing.get(article.id)
                if old and old["content_hash"] == digest:
                    counts.unchanged += 1
                    continue
                version = (old["version"] if old else 0) + 1
                if old:
                    counts.updated += 1
                else:
                    counts.inserted += 1
                counts.changed_ids.append(article.id)
                row = article.to_dict()
                row.update(
                    tags=json.dumps(article.tags),
                    content_hash=digest,
                    version=version,
                    imported_at=now,
                )
                self.db["articles"].upsert(row, pk="id")
                self.db["article_versions"].insert(
                    {
                        "article_id": article.id,
                        "version": version,
                        "content_hash": digest,
                        "data": json.dumps(article.to_dict(), ensure_ascii=False),
                        "changed_at": now,
                        "changed_by": changed_by,
                    }
                )
                existing[article.id] = {"content_hash": digest, "version": version}
        return counts

    def count_recent_drafts(self, owner: str, since: str) -> int:
        """Draft articles of ``owner`` first stored at or after ``since`` (ISO time)."""
        row = self.db.execute(
            "SELECT count(*) FROM articles WHERE owner = ? AND status = 'draft' AND imported_at >= ?",
            [owner, since],
        ).fetchone()
        return int(row[0])

    def add_draft_within_limit(
        self, article: Article, *, owner: str, since: str, limit: int
    ) -> bool:
        """Store a new draft of ``owner`` unless they already started ``limit`` drafts since
        ``since``: the count and the insert in one write transaction, so drafts started at
        once cannot pass the limit together. False (nothing stored) when over the limit."""
        with self.write():
            if self.count_recent_drafts(owner, since) >= limit:
                return False
            self.upsert_articles([article], changed_by=owner)
            return True

    def get_article(self, article_id: str) -> Article:
        rows = list(self.db["articles"].rows_where("id = ?", [article_id]))
        if not rows:
            raise NotFoundError(f"no article with id {article_id!r}")
        return article_from_row(rows[0])

    def iter_articles(self) -> Iterator[Article]:
        for row in self.db["articles"].rows_where(order_by="id"):
            yield article_from_row(row)

    def article_versions(self, article_id: str) -> list[dict[str, Any]]:
        rows = self.db["article_versions"].rows_where(
            "article_id = ?", [article_id], order_by="version"
        )
        return [dict(row, data=json.loads(row["data"])) for row in rows]
