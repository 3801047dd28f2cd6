"""Every regular expression applied to untrusted text runs in time linear in its length.

A pattern that backtracks over an unbroken run ("a" * 20000, "a-a-a-...", "a.a.a...") costs
time quadratic in the run: one cheap request could then hold a worker for seconds or
minutes. Each pattern (and each function that applies them to a request's or an import's
text) is timed on adversarial inputs of 100,000 characters against a budget proportional
to the length: linear patterns take milliseconds, the quadratic ones this guards against
took from seconds to minutes at that size.
"""

from __future__ import annotations

import importlib
import re
import time

import pytest

# Modules whose patterns read text from requests, imports or articles.
MODULES = (
    "kb.lexical",
    "kb.redaction",
    "kb.importers",
    "kb.articles",
    "kb.lint",
    "kb.authoring",
    "kb.text",
    "kb.drafts",
    "search.text",
    "search.state",
    "search.triage",
    "indexer.embedders",
)
LENGTH = 100_000
# Generous: linear patterns run at well under 1 microsecond a character here. A quadratic
# one at 100,000 characters needs over a thousand times this.
BUDGET_SECONDS_PER_CHAR = 20e-6

# Units repeated to the length: runs of one class, runs broken by the separators the
# patterns accept (identifiers, e-mail addresses, URLs, versions, phones, IPs), and
# half-matches of the keyword rules.
UNITS = (
    "a",
    "1",
    "A",
    "é",
    " ",
    "a-",
    "a.",
    "a_",
    "1.",
    "1-",
    "1 ",
    "a@",
    "a:",
    "a/",
    ":",
    "::",
    "aA1",
    "a1-",
    "0x",
    "-",
    ".",
    "password=",
    "key ",
    "ab:",
    "[a",
    "eyJ",
    "+1 ",
    "(",
    "a:/",
    "a@a.",
    "---",
    "Caused by: ",
    "error ",
    "x\n",
    "a_",
    "A_",
    "a_password=",
    "mot de ",
    "xoxb-1-",
    "://",
    "1 1",
    "1-1",
    "(1) ",
    "1.1.",
    "00 ",
    "de89 ",
    "ü@ü.",
    "AccountKey=",
    "ghp_",
    "sk_live_",
    "-----BEGIN PRIVATE KEY-----",
    "0000 ",
    "0171 2345678 ",
    "(0) ",
    "印刷",
    "Ä",
    "2026-01-01 ",
)


def _patterns():
    for name in MODULES:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if isinstance(value, re.Pattern):
                yield pytest.param(value, id=f"{name}.{attr}")
    # Patterns the redactor takes from the libraries it builds on (detect-secrets).
    from kb.redaction import library_patterns

    for number, value in enumerate(library_patterns()):
        yield pytest.param(value, id=f"kb.redaction.library_patterns[{number}]")


def _adversarial():
    for unit in UNITS:
        yield unit * (LENGTH // len(unit))


def _timed(function, text: str) -> float:
    started = time.perf_counter()
    function(text)
    return time.perf_counter() - started


@pytest.mark.parametrize("pattern", list(_patterns()))
def test_pattern_is_linear_on_adversarial_text(pattern: re.Pattern):
    budget = BUDGET_SECONDS_PER_CHAR * LENGTH
    for text in _adversarial():
        spent = _timed(lambda t: [m.group(0) for m in pattern.finditer(t)], text)
        assert spent < budget, (
            f"{pattern.pattern!r} took {spent:.2f} s on {text[:12]!r}... ({len(text)} chars)"
        )


def _entry_points():
    from kb import lexical
    from kb.redaction import Redactor
    from search import text as search_text

    redactor = Redactor()
    yield pytest.param(lexical.identifier_phrases, id="identifier_phrases")
    yield pytest.param(lexical.query_terms, id="query_terms")
    yield pytest.param(lexical.tokens, id="tokens")
    yield pytest.param(redactor.redact, id="Redactor.redact")
    yield pytest.param(
        lambda t: search_text.highlight_snippet(t, ["a", "1"]), id="highlight_snippet"
    )
    yield pytest.param(lexical.strip_noise, id="strip_noise")
    yield pytest.param(lambda t: search_text.compose_query("t", t, 20_000), id="compose_query")
    yield pytest.param(search_text.search_terms, id="search_terms")
    yield pytest.param(lambda t: search_text.search_terms(t, "de"), id="search_terms_de")
    yield pytest.param(lexical.cjk_units, id="cjk_units")


@pytest.mark.parametrize("function", list(_entry_points()))
def test_text_functions_are_linear(function):
    budget = BUDGET_SECONDS_PER_CHAR * LENGTH * 2
    for text in _adversarial():
        spent = _timed(function, text)
        assert spent < budget, f"took {spent:.2f} s on {text[:12]!r}... ({len(text)} chars)"


def test_identifier_run_is_read_once():
    """The case that stalled the server: a description of one 20,000-letter word."""
    from kb.lexical import identifier_phrases

    assert identifier_phrases("a" * 20_000) == []
    assert identifier_phrases("see ORA-12541 and " + "b" * 20_000) == ["ora 12541"]
