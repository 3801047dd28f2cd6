"""The lexical rules have one home (kb.lexical), and the store's full-text table agrees with it."""

from __future__ import annotations

import sqlite3

from kb.lexical import FTS_TOKENIZER, fts_match_expression, stem, tokens

WORDS = (
    "disconnecting connection connected relational conditional generalizations oscillators "
    "happily digitizer printing printers queued queues mailbox mailboxes authentication "
    "authenticating certificates expired expiring installer installation failures failing "
    "synchronisation synchronization keepalive timeouts dropped dropping rebooted"
)


def test_the_fts5_tokenizer_stores_the_stems_the_query_side_computes():
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize={FTS_TOKENIZER!r})")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
    db.execute("INSERT INTO t(text) VALUES (?)", [WORDS])
    stored = {row[0] for row in db.execute("SELECT term FROM v")}
    assert stored == {stem(word) for word in tokens(WORDS)}


def test_match_expressions_quote_every_term():
    assert fts_match_expression(['a"b', "c", ""]) == '"a""b" OR "c"'
    assert fts_match_expression(["NEAR(a b)", "x*", "col:y"]) == '"NEAR(a b)" OR "x*" OR "col:y"'


def test_accents_are_folded_as_the_fts5_tokenizer_folds_them():
    text = "contraseña café ÄRGER œuvre ガイド naïve"
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize={FTS_TOKENIZER!r})")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
    db.execute("INSERT INTO t(text) VALUES (?)", [text])
    assert {row[0] for row in db.execute("SELECT term FROM v")} == {stem(w) for w in tokens(text)}


def test_language_analysis_stems_per_language_and_splits_japanese_and_chinese():
    from kb.lexical import analyse, cjk_units, language_terms

    assert cjk_units("プリンターが印刷できない")[:3] == ["プリ", "リン", "ンタ"]
    assert cjk_units("打印机 x 印") == ["打印", "印机", "印"]
    german = language_terms("Passwörter abgelaufen, Anmeldung schlägt fehl", "de")
    assert german == ["passwort", "abgelauf", "anmeld", "schlagt", "fehl"]
    assert language_terms("Passwords expired", "en") == []  # English is FTS5's porter stemmer's
    assert language_terms("パスワード", None) == ["パス", "スワ", "ワー", "ード"]
    assert analyse("The printer on the third floor is offline since this morning") == ""
    assert (
        analyse("Mein Passwort ist abgelaufen und ich kann mich nicht anmelden").split()[-1]
        == "anmeld"
    )


def test_a_store_made_before_language_terms_keeps_its_full_text_index(tmp_path):
    import sqlite_utils

    from kb.store import open_store
    from kb.store.migrations import MIGRATIONS, m018_language_terms

    path = tmp_path / "home" / "kb.sqlite3"
    path.parent.mkdir()
    db = sqlite_utils.Database(path)
    db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    for migration in MIGRATIONS[: MIGRATIONS.index(m018_language_terms)]:
        migration(db)
        db["_migrations"].insert({"name": migration.__name__, "applied_at": "2026-01-01"})
    db.execute(
        "INSERT INTO chunks (doc_kind, doc_id, position, text, text_hash) "
        "VALUES ('incident', 'OLD-1', 0, 'printers offline again', 'h')"
    )
    db.conn.commit()
    db.close()
    store = open_store(tmp_path / "home")
    try:
        assert [cid for cid, _ in store.fts_chunks(["printer"], 10)] == [1]
        assert store.term_document_counts([stem("printers")]) == {"printer": 1}
        store.db.execute("UPDATE chunks SET terms = 'プリ リン' WHERE id = 1")
        assert [cid for cid, _ in store.fts_chunks(["リン"], 10)] == [1]
    finally:
        store.close()
