"""Numbered schema migrations, applied in order when a store is opened.

Each migration is a function ``mNNN_name(db)`` taking a sqlite-utils Database inside an
open write transaction. Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from kb.lexical import FTS_TOKENIZER


def m001_initial(db: sqlite_utils.Database) -> None:
    db["articles"].create(
        {
            "id": str,
            "title": str,
            "body": str,
            "status": str,
            "audience": str,
            "product": str,
            "category": str,
            "tags": str,
            "owner": str,
            "review_by": str,
            "updated": str,
            "path": str,
            "content_hash": str,
            "version": int,
            "imported_at": str,
        },
        pk="id",
    )
    db["article_versions"].create(
        {
            "article_id": str,
            "version": int,
            "content_hash": str,
            "data": str,
            "changed_at": str,
            "changed_by": str,
        },
        pk=("article_id", "version"),
    )
    db["incidents"].create(
        {
            "id": str,
            "title": str,
            "description": str,
            "resolution": str,
            "resolution_code": str,
            "category": str,
            "product": str,
            "status": str,
            "opened_at": str,
            "resolved_at": str,
            "article_id": str,
            "content_hash": str,
            "source": str,
            "imported_at": str,
        },
        pk="id",
    )
    db["incidents"].create_index(["article_id"])
    # One row per piece of text that is embedded. The row id is the FAISS id.
    db.execute(
        """
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_kind TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            heading TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            UNIQUE (doc_kind, doc_id, position)
        )
        """
    )
    db["chunks"].enable_fts(["text"], create_triggers=True, tokenize=FTS_TOKENIZER)
    # The content-hash cache: a text is embedded once per model, whatever chunk holds it.
    db["vectors"].create(
        {"model_id": str, "text_hash": str, "vector": bytes, "created_at": str},
        pk=("model_id", "text_hash"),
    )
    # Which version of each document the chunks were made from.
    db["indexed_docs"].create(
        {"doc_kind": str, "doc_id": str, "doc_hash": str, "indexed_at": str},
        pk=("doc_kind", "doc_id"),
    )
    # Every chunk added or removed, in order: workers replay it to stay in step.
    db.execute(
        """
        CREATE TABLE index_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            op TEXT NOT NULL CHECK (op IN ('add', 'remove')),
            chunk_id INTEGER NOT NULL,
            doc_kind TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            at TEXT NOT NULL
        )
        """
    )
    db["suggestions"].create(
        {
            "id": str,
            "created_at": str,
            "query": str,
            "incident_ref": str,
            "filters": str,
            "k": int,
            "no_good_match": int,
            "confidence": float,
            "results": str,
            "principal": str,
            "model_id": str,
            "latency_ms": float,
        },
        pk="id",
    )
    db["suggestions"].create_index(["created_at"])
    db["feedback"].create(
        {
            "suggestion_id": str,
            "agent": str,
            "outcome": str,
            "used_id": str,
            "used_kind": str,
            "used_rank": int,
            "created_at": str,
            "updated_at": str,
            "changes": int,
        },
        pk=("suggestion_id", "agent"),
        foreign_keys=[("suggestion_id", "suggestions", "id")],
    )
    db["feedback"].create_index(["used_id"])
    db["feedback_events"].create(
        {
            "id": int,
            "suggestion_id": str,
            "agent": str,
            "outcome": str,
            "used_id": str,
            "at": str,
        },
        pk="id",
    )
    db["api_tokens"].create(
        {
            "id": int,
            "name": str,
            "role": str,
            "token_hash": str,
            "created_at": str,
            "revoked_at": str,
        },
        pk="id",
    )
    db["api_tokens"].create_index(["token_hash"], unique=True)
    db["users"].create(
        {"name": str, "role": str, "password_hash": str, "created_at": str, "disabled": int},
        pk="name",
    )


def m002_ranking_profiles(db: sqlite_utils.Database) -> None:
    # Ranking parameters fitted on the store's own incidents after each `kb index`.
    db["ranking_profiles"].create(
        {"id": int, "model_id": str, "created_at": str, "params": str}, pk="id"
    )
    db["ranking_profiles"].create_index(["model_id"])


def m003_fts_vocabulary(db: sqlite_utils.Database) -> None:
    # Document counts per (stemmed) term, read to keep the rarest terms of a long query.
    db.execute("CREATE VIRTUAL TABLE chunks_fts_vocab USING fts5vocab(chunks_fts, 'row')")


def m004_sign_in_failures(db: sqlite_utils.Database) -> None:
    # Failed sign-ins by key ("user:NAME" or "addr:ADDRESS"), for throttling on every worker.
    db["sign_in_failures"].create({"id": int, "key": str, "at": float}, pk="id")
    db["sign_in_failures"].create_index(["key", "at"])


def m005_session_epochs(db: sqlite_utils.Database) -> None:
    # A user's sessions carry this number; raising it (sign-out, a new password or role,
    # disabling) ends every session made before, on every worker.
    db["users"].add_column("session_epoch", int, not_null_default=0)


def m006_suggestion_titles(db: sqlite_utils.Database) -> None:
    # The title as typed, so the agent page can show a recorded search again from its id
    # alone (the text never travels in a URL); the description is the rest of `query`.
    db["suggestions"].add_column("title", str, not_null_default="")


def m007_audit_and_erasures(db: sqlite_utils.Database) -> None:
    # Who did what to what, for a security reviewer: reads by elevated roles, tokens, role
    # changes, erasures. Rows are only ever added: the triggers refuse changes and deletes.
    db.execute(
        """
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT ''
        )
        """
    )
    db.execute("CREATE INDEX audit_log_at ON audit_log (at)")
    db.execute(
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    )
    # An erasure's ids until every trace is gone (rows, then index files and free pages):
    # a killed erasure is found here and finished by the next one or by `kb doctor`.
    db["erasures"].create(
        {
            "id": int,
            "started_at": str,
            "actor": str,
            "doc_ids": str,
            "state": str,
            "finished_at": str,
        },
        pk="id",
    )


def m008_routing_fields(db: sqlite_utils.Database) -> None:
    # Where incidents went and how urgent they were: the evidence triage rests on.
    for name in ("assignment_group", "priority", "escalated", "customer_tier"):
        db["incidents"].add_column(name, str, not_null_default="")
    db["incidents"].create_index(["status", "opened_at"])


def m009_storms(db: sqlite_utils.Database) -> None:
    # Storms seen (many alike open incidents at once) and their webhook delivery: one row
    # per storm, so every worker and node posts it once.
    db["storms"].create(
        {
            "id": str,
            "first_seen": str,
            "payload": str,
            "delivered_at": str,
            "attempts": int,
            "next_attempt_at": str,
            "lease_until": str,
            "last_error": str,
        },
        pk="id",
        not_null={"delivered_at", "next_attempt_at", "lease_until"},
        defaults={
            "delivered_at": "",
            "attempts": 0,
            "next_attempt_at": "",
            "lease_until": "",
            "last_error": "",
        },
    )


def m010_predicted_groups(db: sqlite_utils.Database) -> None:
    # The assignment group triage predicted for a suggestion, to compare with where the
    # incident was finally resolved (routing accuracy on the dashboard).
    db["suggestions"].add_column("predicted_group", str, not_null_default="")


def m011_settings_and_index_versions(db: sqlite_utils.Database) -> None:
    # Values every worker and node must share, such as the key that signs session cookies.
    db["settings"].create({"name": str, "value": str}, pk="name", not_null={"value"})
    # Index versions as published by any node: on a shared database the others build a
    # replica of each from the stored vectors (kb.app.replica).
    db["index_versions"].create(
        {
            "version": str,
            "model_id": str,
            "model_path": str,
            "log_seq": int,
            "published_at": str,
            "node": str,
        },
        pk="version",
        not_null={"model_id", "model_path", "log_seq", "published_at", "node"},
        defaults={"model_path": "", "node": ""},
    )


def m013_article_flags(db: sqlite_utils.Database) -> None:
    # Agents' flags on articles (wrong, outdated, unclear, with a note), open until a
    # knowledge manager resolves them; they count in `kb articles stale`.
    db["article_flags"].create(
        {
            "id": int,
            "article_id": str,
            "kind": str,
            "note": str,
            "agent": str,
            "created_at": str,
            "resolved_at": str,
            "resolved_by": str,
        },
        pk="id",
        not_null={
            "article_id",
            "kind",
            "note",
            "agent",
            "created_at",
            "resolved_at",
            "resolved_by",
        },
        defaults={"note": "", "resolved_at": "", "resolved_by": ""},
    )
    db["article_flags"].create_index(["article_id", "resolved_at"])


def m014_audit_chain(db: sqlite_utils.Database) -> None:
    # Each audit entry carries the hash of the entry before it and its own (kb.store.privacy):
    # an entry removed, changed or slipped in between is found by `kb audit --verify`.
    # Entries written before this migration have none and are reported as such.
    db["audit_log"].add_column("prev_hash", str, not_null_default="")
    db["audit_log"].add_column("hash", str, not_null_default="")


def m015_outgoing_events(db: sqlite_utils.Database) -> None:
    # Events for a ticket system (an agent used a result, or none helped): an outbox written
    # in the same transaction as the choice, posted by a background thread, each once. The
    # incident and result they name are columns, so erasing an incident erases its events.
    db["outgoing_events"].create(
        {
            "id": str,
            "created_at": str,
            "kind": str,
            "incident_ref": str,
            "result_kind": str,
            "result_id": str,
            "payload": str,
            "delivered_at": str,
            "attempts": int,
            "next_attempt_at": str,
            "lease_until": str,
            "last_error": str,
        },
        pk="id",
        not_null={
            "created_at",
            "kind",
            "incident_ref",
            "result_kind",
            "result_id",
            "payload",
            "delivered_at",
            "next_attempt_at",
            "lease_until",
        },
        defaults={
            "incident_ref": "",
            "result_kind": "",
            "result_id": "",
            "delivered_at": "",
            "attempts": 0,
            "next_attempt_at": "",
            "lease_until": "",
            "last_error": "",
        },
    )
    db["outgoing_events"].create_index(["delivered_at", "next_attempt_at"])


def m016_suggestion_previews(db: sqlite_utils.Database) -> None:
    # Searches shown while an agent is still typing: kept aside (not suggestions) until the
    # agent acts on one or stops typing, then recorded; dropped after an hour otherwise.
    db["suggestion_previews"].create(
        {"id": str, "created_at": str, "principal": str, "incident_ref": str, "payload": str},
        pk="id",
        not_null={"created_at", "principal", "incident_ref", "payload"},
    )
    db["suggestion_previews"].create_index(["created_at"])


def m017_predicted_sure(db: sqlite_utils.Database) -> None:
    # Whether triage was sure of the group it predicted ("yes" or "no"; "" before it said),
    # so the dashboard shows the share not sure and the accuracy when sure.
    db["suggestions"].add_column("predicted_sure", str, not_null_default="")


def m018_language_terms(db: sqlite_utils.Database) -> None:
    # Each chunk's language terms (kb.lexical.analyse: stems of its own language, CJK
    # bigrams) in a second column of the full-text table. Chunks made before keep an empty
    # column until they are indexed again (`kb index --rebuild`).
    db.execute("ALTER TABLE chunks ADD COLUMN terms TEXT NOT NULL DEFAULT ''")
    for trigger in ("chunks_ai", "chunks_ad", "chunks_au"):
        db.execute(f"DROP TRIGGER IF EXISTS [{trigger}]")
    db.execute("DROP TABLE IF EXISTS chunks_fts_vocab")
    db.execute("DROP TABLE IF EXISTS chunks_fts")
    db["chunks"].enable_fts(["text", "terms"], create_triggers=True, tokenize=FTS_TOKENIZER)
    db.execute("CREATE VIRTUAL TABLE chunks_fts_vocab USING fts5vocab(chunks_fts, 'row')")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    m001_initial,
    m002_ranking_profiles,
    m003_fts_vocabulary,
    m004_sign_in_failures,
    m005_session_epochs,
    m006_suggestion_titles,
    m007_audit_and_erasures,
    m008_routing_fields,
    m009_storms,
    m010_predicted_groups,
    m011_settings_and_index_versions,
    m013_article_flags,
    m014_audit_chain,
    m015_outgoing_events,
    m016_suggestion_previews,
    m017_predicted_sure,
    m018_language_terms,
]
