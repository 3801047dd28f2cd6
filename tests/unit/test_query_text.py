"""Query text: terms, the rarest terms of long queries, snippets, one window per long query."""

from kb.lexical import query_terms, rarest_terms
from search.suggester import query_windows
from search.text import highlight_snippet


def test_query_terms_drop_stopwords_and_cap():
    assert query_terms("The VPN is down and I can't work") == ["vpn", "down", "work"]
    assert len(query_terms(" ".join(f"word{i}" for i in range(1000)))) == 400



def test_long_queries_keep_their_rarest_terms():
    counts = {"vpn": 40, "crash": 3, "common": 90, "0x80092013": 1, **{f"w{i}": 10 for i in range(60)}}
    terms = ["vpn", "crash", "common", "unseen", "0x80092013"] + [f"w{i}" for i in range(60)]
    kept = rarest_terms(terms, counts, total=100, limit=10)
    assert len(kept) == 10
    assert {"0x80092013", "crash"} <= set(kept)
    assert "common" not in kept and "unseen" not in kept  # in most chunks / in none
    assert rarest_terms(["vpn", "crash"], counts, total=100) == ["crash", "vpn"]
    # On a large store the commonest terms give way once the rarer ones fill the budget.
    big = {"vpn": 30_000, "crash": 40, "0x80092013": 2, "error": 45_000}
    assert rarest_terms(["error", "vpn", "crash", "0x80092013"], big, total=1_000_000,
                        postings_budget=50_000) == ["0x80092013", "crash", "vpn"]
    # When even the rarest term is over the budget, FTS5 is not asked at all.
    assert rarest_terms(["error", "vpn"], big, total=1_000_000, postings_budget=20_000) == []
    assert rarest_terms(["error", "vpn"], big, total=1_000_000, postings_budget=30_000) == ["vpn"]



def test_highlight_escapes_html():
    snippet = highlight_snippet("<b>vpn</b> drops & <script>", ["vpn"])
    assert "<b>" not in snippet and "<script>" not in snippet
    assert "<mark>vpn</mark>" in snippet



def test_long_queries_are_read_in_one_window_led_by_the_title():
    text = "title line\n" + " ".join(f"w{i}" for i in range(1000))
    windows = query_windows(text)
    assert len(windows) == 1 and windows[0].startswith("title line\nw0 ")
    assert query_windows("short one") == ["short one"]

