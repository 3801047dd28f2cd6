"""The lexical rules have one home (kb.lexical), and the store's full-text table agrees with it."""

from __future__ import annotations

import sqlite3

from kb.lexical import FTS_TOKENIZER, fts_match_expression, stem, tokens

WORDS = ("disconnecting connection connected relational conditional generalizations oscillators "
         "happily digitizer printing printers queued queues mailbox mailboxes authentication "
         "authenticating certificates expired expiring installer installation failures failing "
         "synchronisation synchronization keepalive timeouts dropped dropping rebooted")


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
