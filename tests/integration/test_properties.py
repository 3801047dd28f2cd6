"""Property tests: hostile input gives a clear error or a valid result, never a crash.

- Importers: arbitrary text and bytes, JSON values of every type, CSV cells, deep nesting,
  huge lines, odd Unicode and NUL bytes give a RecordError or valid incidents.
- Articles: any text gives a RecordError or a valid article; rendered Markdown never carries
  raw HTML, event handlers, or links and images with a scheme other than http, https, mailto.
- Queries: the text that reaches the embedder and FTS5 is capped by KB_MAX_QUERY_CHARS.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kb.articles import parse_article_text, render_markdown
from kb.errors import RecordError
from kb.importers import FIELDS, FORMATS, read_incident_file, read_incident_text
from kb.lexical import MAX_QUERY_TERMS, fts_match_expression, query_terms
from kb.models import INCIDENT_STATES, Incident
from search.text import compose_query, is_log_like

PROPERTY = settings(
    max_examples=int(os.environ.get("KB_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ODD = [
    "\x00",
    "\ufeff",
    "\u202e",
    "\u2028",
    "\u0085",
    "\x1c",
    "\r",
    "\r\n",
    "\t",
    '"',
    "'",
    ",",
    ";",
    "{",
    "}",
    "[",
    "]",
    ":",
    "\\",
    "\\u0000",
    "\\ud800",
    "\udc80",
    "é",
    "日本",
    "🙂",
    "\u0301",
    "\U0010ffff",
    "NaN",
    "1e400",
    "9" * 5000,
]
odd_text = st.lists(st.one_of(st.sampled_from(ODD), st.text(max_size=20)), max_size=12).map("".join)
any_text = st.one_of(st.text(), odd_text, st.text(st.characters(codec="utf-8")))


# --- importers -----------------------------------------------------------------------


def assert_valid(incidents: list[Incident]) -> None:
    """What an import may return: complete incidents the store can hold."""
    ids = [i.id for i in incidents]
    assert len(ids) == len(set(ids))
    for incident in incidents:
        assert incident.id and len(incident.id) <= 200 and not set(incident.id) & set("\r\n\t")
        assert incident.title or incident.description
        assert incident.status in INCIDENT_STATES
        for name in FIELDS:
            value = getattr(incident, name)
            assert isinstance(value, str) and "\x00" not in value
            value.encode("utf-8")  # storable: no unpaired surrogates
        for name in ("opened_at", "resolved_at"):
            value = getattr(incident, name)
            assert value == "" or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", value)


def read_or_reject(text: str, kind: str, fmt: str = "generic") -> None:
    try:
        incidents = read_incident_text(text, kind, fmt=fmt, source="prop")
    except RecordError as exc:
        assert str(exc).startswith("prop")  # the message says where
        return
    assert_valid(incidents)


@PROPERTY
@given(text=any_text, kind=st.sampled_from(["jsonl", "json", "csv"]), fmt=st.sampled_from(FORMATS))
@example(text="[" * 100_000 + "]" * 100_000, kind="json", fmt="generic")
@example(text="[" * 100_000, kind="jsonl", fmt="generic")
@example(text='{"id": ' + "9" * 5000 + "}", kind="jsonl", fmt="generic")
@example(text='{"id": "x", "title": "t\\ud800"}', kind="jsonl", fmt="generic")
@example(
    text='{"id": "x", "title": "t", "opened_at": "0001-01-01T00:00:00+05:00"}',
    kind="json",
    fmt="generic",
)
@example(text='id,title\n"1,"x\x00', kind="csv", fmt="generic")
@example(text="\ufeffid,title\r\n1,x\r\n", kind="csv", fmt="generic")
@example(text="id,title\n1," + "x" * 500_000 + "\n", kind="csv", fmt="generic")
def test_incident_text_gives_records_or_a_clear_error(text, kind, fmt):
    read_or_reject(text, kind, fmt)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_scalars,
    st.sampled_from(
        [
            "resolved",
            "Closed",
            "open",
            "solved",
            "2024-01-02",
            "2024-01-02T03:04:05Z",
            "02/Jan/24 3:04 PM",
            "2024-02-30",
            "9999-12-31T23:59:59-23:59",
            "",
            " ",
        ]
    ),
    json_values,
)
records = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {"id": field_values}, optional={f: field_values for f in FIELDS if f != "id"}
        ),
        json_values,
    ),
    max_size=6,
)


@PROPERTY
@given(items=records, kind=st.sampled_from(["jsonl", "json"]))
def test_json_records_of_any_shape(items, kind):
    text = json.dumps(items) if kind == "json" else "\n".join(json.dumps(i) for i in items)
    read_or_reject(text, kind)


@PROPERTY
@given(
    header=st.lists(
        st.one_of(
            st.sampled_from(
                [*FIELDS, "number", "short_description", "Issue key", "Summary", "Subject"]
            ),
            any_text,
        ),
        min_size=1,
        max_size=8,
    ),
    rows=st.lists(st.lists(any_text, max_size=9), max_size=6),
    fmt=st.sampled_from(FORMATS),
)
def test_csv_cells_of_any_content(header, rows, fmt):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    read_or_reject(out.getvalue(), "csv", fmt)


@PROPERTY
@given(
    data=st.binary(max_size=2000), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".txt", ""])
)
@example(data=b"\xff\xfe{\x00", suffix=".jsonl")
@example(data=b'{"id": "1", "title": "\xed\xa0\x80"}', suffix=".jsonl")  # CESU surrogate bytes
def test_incident_file_bytes(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"in{suffix}"
        path.write_bytes(data)
        try:
            incidents = read_incident_file(path)
        except RecordError:
            return
        assert_valid(incidents)


def test_a_valid_file_survives_the_property_checks(data_dir):
    incidents = read_incident_file(data_dir / "incidents.jsonl")
    assert incidents
    assert_valid(incidents)


# --- articles ------------------------------------------------------------------------

FRONT_KEYS = [
    "id",
    "title",
    "status",
    "audience",
    "product",
    "category",
    "tags",
    "owner",
    "review_by",
    "updated",
]
front_values = st.one_of(
    st.sampled_from(
        [
            "net-vpn",
            "Title",
            "draft",
            "validated",
            "internal",
            "public",
            "2026-01-02",
            "2024-02-30",
            "[a, b]",
            "{a: 1}",
            "&a [1]",
            "*a",
            "!!binary AAAA",
            '"\\ud800"',
            "!!python/object:os.system",
            "|\n  block",
            "~",
            "null",
            "1e400",
        ]
    ),
    any_text.map(json.dumps),
)


@st.composite
def article_texts(draw):
    if draw(st.booleans()):
        return draw(any_text)
    keys = draw(st.lists(st.sampled_from(FRONT_KEYS + ["extra"]), max_size=12))
    lines = [f"{key}: {draw(front_values)}" for key in keys]
    return "---\n" + "\n".join(lines) + "\n---\n" + draw(any_text)


@PROPERTY
@given(text=article_texts())
@example(
    text="---\nid: a\ntitle: t\nstatus: draft\naudience: internal\nreview_by: 2024-02-30\n---\n"
)
@example(text='---\nid: a\ntitle: "\\ud800"\nstatus: draft\naudience: internal\n---\n')
@example(text="---\n" + "[" * 5000 + "\n---\n")
def test_article_text_gives_an_article_or_a_clear_error(text):
    try:
        parsed = parse_article_text(text, "prop.md")
    except RecordError as exc:
        assert str(exc).startswith("prop.md")
        return
    article = parsed.article
    assert article.id and article.title and article.status and article.audience
    for value in (article.id, article.title, article.body, article.product, *article.tags):
        assert isinstance(value, str)
        value.encode("utf-8")


ALLOWED_TAGS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "em",
    "strong",
    "a",
    "img",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "hr",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "s",
}
ALLOWED_ATTRIBUTES = {"href", "src", "alt", "title", "rel", "start", "class", "style"}
SAFE_SCHEMES = ("http", "https", "mailto")


class HtmlAudit(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES:
                self.problems.append(f"attribute {name}={value!r} on <{tag}>")
            elif name in ("href", "src") and not safe_url(value or ""):
                self.problems.append(f"{name}={value!r}")
            elif name == "style" and not re.fullmatch(
                r"text-align:(left|right|center)", value or ""
            ):
                self.problems.append(f"style={value!r}")

    handle_startendtag = handle_starttag

    def handle_comment(self, data):
        self.problems.append("comment")

    def handle_pi(self, data):
        self.problems.append("processing instruction")

    def unknown_decl(self, data):
        self.problems.append("declaration")


def safe_url(url: str) -> bool:
    """What a browser would take as the scheme: control characters and spaces dropped."""
    probe = re.sub(r"[\x00-\x20\x7f]", "", url).lower()
    scheme, colon, _ = probe.partition(":")
    if not colon or any(c in scheme for c in "/?#"):
        return True  # relative
    return scheme in SAFE_SCHEMES


HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=//evil>",
    "<!-- c -->",
    "<svg onload=alert(1)>",
    "<style>*{}</style>",
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](jav&#x61;script:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "[x]( javascript:alert(1))",
    "[x](\x01javascript:x)",
    "<javascript:alert(1)>",
    "<data:text/html,x>",
    "![i](javascript:alert(1))",
    "![i](data:image/svg+xml,x)",
    "[r]: javascript:alert(1)\n\n[x][r]",
    "[x](other-article.md)",
    "[x](https://example.com/a?b=c#d)",
    "[x](mailto:a@b.c)",
    "[x](/relative/path)",
    "[x](#anchor)",
    "| a | b |\n|:-|-:|\n| 1 | 2 |",
    "```html\n<script>x</script>\n```",
    "`<b>`",
    "> quote",
    "- item\n- item",
    "1. one\n2. two",
    "# h1\n## h2",
    "~~strike~~",
    "**b** _i_",
    "\n\n",
    "&lt;script&gt;",
    "&#60;script&#62;",
]
markdown = st.lists(st.one_of(st.sampled_from(HOSTILE), any_text), max_size=10).map("\n".join)


@PROPERTY
@given(body=markdown)
def test_rendered_markdown_is_safe(body):
    html = render_markdown(body)
    audit = HtmlAudit()
    audit.feed(html)
    audit.close()
    assert not audit.problems, (audit.problems, html)


@pytest.mark.parametrize("fragment", HOSTILE)
def test_each_hostile_fragment_renders_safely(fragment):
    audit = HtmlAudit()
    audit.feed(render_markdown(fragment))
    assert not audit.problems


def test_safe_links_are_kept_and_article_links_rewritten():
    html = render_markdown("[a](https://example.com/x) [b](other-article.md#fix) [c](mailto:a@b.c)")
    assert 'href="https://example.com/x"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert 'href="/articles/other-article#fix"' in html and 'href="mailto:a@b.c"' in html
    # An unsafe link stays as plain text: no link at all.
    assert "href" not in render_markdown("[a](javascript:alert(1))")


# --- queries -------------------------------------------------------------------------


@PROPERTY
@given(
    title=st.one_of(st.none(), any_text),
    description=st.one_of(st.none(), any_text),
    max_chars=st.integers(min_value=1, max_value=5000),
)
@example(title="t" * 10, description="d" * 100_000, max_chars=4000)
def test_query_text_is_capped(title, description, max_chars):
    text, truncated = compose_query(title, description, max_chars)
    assert len(text) <= max_chars and "\x00" not in text
    full, _ = compose_query(title, description, 10**9)
    assert truncated == (len(full) > max_chars)
    if not truncated and text != full:
        assert is_log_like(full)  # a log is read errors first within the cap, never cut blindly
    terms = query_terms(text)
    assert len(terms) <= MAX_QUERY_TERMS
    expression = fts_match_expression(terms)
    # Every term is one quoted FTS5 string: nothing outside quotes but OR.
    assert re.fullmatch(r'(?:"(?:[^"]|"")*"(?: OR "(?:[^"]|"")*")*)?', expression)


def test_the_embedder_and_fts_never_see_more_than_the_cap(tmp_path):
    from indexer.embedders import HashingEmbedder
    from kb.app.service import Service
    from kb.config import load_config
    from search.suggester import SuggestRequest
    from tests.conftest import load_test_data

    config = load_config(
        environ={"KB_MAX_QUERY_CHARS": "500"}, home=str(tmp_path / "home"), embed_backend="hashing"
    )
    embedded: list[str] = []
    matched: list[str] = []

    class SpyEmbedder(HashingEmbedder):
        def embed(self, texts, **kwargs):
            embedded.extend(texts)
            return super().embed(texts, **kwargs)

    service = Service(config, embedder=SpyEmbedder())
    try:
        load_test_data(service)
        service.index()
        store = service.store()
        real_fts = store.fts_chunks
        store.fts_chunks = lambda terms, limit: (
            matched.append(fts_match_expression(terms)) or real_fts(terms, limit)
        )
        embedded.clear()
        words = " ".join(f"word{n} vpn" for n in range(20_000))
        suggestion = service.suggester().suggest(
            store, SuggestRequest(title="VPN drops " * 50, description=words, k=3)
        )
    finally:
        service.close()
    assert suggestion.truncated
    assert embedded and all(len(text) <= 500 for text in embedded)
    assert matched and all(len(m.split(" OR ")) <= MAX_QUERY_TERMS for m in matched)
    assert suggestion.query == compose_query("VPN drops " * 50, words, 500)[0]
