"""Query text: terms, the rarest terms of long queries, snippets, one window per long query."""

from kb.lexical import query_terms, rarest_terms
from search.suggester import query_windows
from search.text import highlight_snippet


def test_query_terms_drop_stopwords_and_cap():
    assert query_terms("The VPN is down and I can't work") == ["vpn", "down", "work"]
    assert len(query_terms(" ".join(f"word{i}" for i in range(1000)))) == 400


def test_long_queries_keep_their_rarest_terms():
    counts = {
        "vpn": 40,
        "crash": 3,
        "common": 90,
        "0x80092013": 1,
        **{f"w{i}": 10 for i in range(60)},
    }
    terms = ["vpn", "crash", "common", "unseen", "0x80092013"] + [f"w{i}" for i in range(60)]
    kept = rarest_terms(terms, counts, total=100, limit=10)
    assert len(kept) == 10
    assert {"0x80092013", "crash"} <= set(kept)
    assert "common" not in kept and "unseen" not in kept  # in most chunks / in none
    assert rarest_terms(["vpn", "crash"], counts, total=100) == ["crash", "vpn"]
    # On a large store the commonest terms give way once the rarer ones fill the budget.
    big = {"vpn": 30_000, "crash": 40, "0x80092013": 2, "error": 45_000}
    assert rarest_terms(
        ["error", "vpn", "crash", "0x80092013"], big, total=1_000_000, postings_budget=50_000
    ) == ["0x80092013", "crash", "vpn"]
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


def test_log_noise_is_not_a_query_term():
    from kb.lexical import strip_noise

    line = (
        "2026-12-08T03:09:12.123Z ERROR [main] sshd[1234]: Dec  8 00:01:02 [12345.678] "
        "req 123e4567-e89b-12d3-a456-426614174000 id deadbeef12345678 from 10.0.0.1:443 "
        "[email] on 08/12/2026 and 08.12.2026 code 0x80070005 HTTP 429 disk full"
    )
    assert query_terms(line) == ["sshd", "req", "code", "0x80070005", "http", "429", "disk", "full"]
    assert "2026" not in strip_noise("on 2026-12-08 at 10:00") and "10" not in strip_noise(
        "at 10:00"
    )
    assert (
        strip_noise("version 2.3.10 of the decade facade") == "version 2.3.10 of the decade facade"
    )


def test_error_lines_lead_a_log_and_a_long_paste_is_read_at_its_end():
    from search.text import compose_query, error_lines, search_terms

    log = "\n".join(
        [f"2026-12-08 10:00:{n:02d} INFO worker {n} heartbeat ok" for n in range(30)]
        + ["2026-12-08 10:01:00 ERROR disk write failed: No space left on device"]
        + [f"2026-12-08 10:02:{n:02d} INFO worker {n} heartbeat ok" for n in range(30)]
    )
    assert error_lines(log) == ["disk write failed: No space left on device"]
    text, truncated = compose_query("server down", log, 20_000)
    assert text.split("\n")[:2] == ["server down", "disk write failed: No space left on device"]
    assert not truncated
    assert search_terms(text) == [
        "server",
        "down",
        "disk",
        "write",
        "failed",
        "space",
        "left",
        "device",
    ]
    long = "\n".join(f"line {n} of an ordinary report about the weather" for n in range(3000))
    long += "\nCaused by: java.io.IOException: Broken pipe\nthe very last line"
    text, truncated = compose_query("", long, 20_000)
    assert truncated and len(text) <= 20_000
    lines = text.split("\n")
    assert (
        lines[0] == "line 0 of an ordinary report about the weather"
    )  # what the person wrote leads
    # The error at the end is read before the start and the end of the text itself.
    assert lines.index("Caused by: java.io.IOException: Broken pipe") < lines.index("…")
    assert text.endswith("the very last line")
    # Prose within the limit is searched as typed.
    assert compose_query("vpn", "it drops at 10:00 every day", 20_000) == (
        "vpn\nit drops at 10:00 every day",
        False,
    )


def test_common_words_are_never_shown_as_matched():
    from search.text import matched_terms

    terms = query_terms("since this morning the printer says it is offline, new one fine 2026 429")
    assert matched_terms(terms, "printer offline since morning says new fine 2026 429") == [
        "printer",
        "offline",
        "429",
    ]
    assert "<mark>" not in highlight_snippet("since this morning", terms)
