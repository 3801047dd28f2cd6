import pytest

from kb.articles import scan_articles
from kb.errors import ValidationError
from kb.lexical import fts_match_expression
from kb.models import Incident
from search.ranking import Filters, Viewer
from search.suggester import SuggestRequest
from tests.conftest import DATA

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines


def ask(service, text, **kwargs):
    return service.suggester().suggest(
        service.store(), SuggestRequest(description=text, **kwargs), record=False
    )


def test_vpn_query_finds_the_vpn_article_with_evidence(indexed):
    suggestion = ask(indexed, "vpn keeps disconnecting every few minutes")
    top = suggestion.results[0]
    assert (top.kind, top.id) == ("article", "net-vpn-drops")
    assert top.similar_count == 3  # T-1, T-2, T-3 were resolved with it
    assert {s["id"] for s in top.similar_incidents} <= {"T-1", "T-2", "T-3"}
    assert "<mark>" in top.snippet and "vpn" in top.matched_terms


def test_results_are_distinct_resolutions(indexed):
    suggestion = ask(indexed, "laptop keyboard keys not working", k=10)
    ids = [r.id for r in suggestion.results]
    groups = [r.group for r in suggestion.results]
    assert len(groups) == len(set(groups))
    # Three incidents share one resolution text: they come back as one result.
    keyboard = [r for r in suggestion.results if r.id in {"T-7", "T-8", "T-9"}]
    assert len(keyboard) == 1
    assert ids.count(keyboard[0].id) == 1


def test_agents_never_see_drafts_or_archived_articles(indexed):
    ids = {r.id for r in ask(indexed, "customer charged twice refund duplicate", k=20).results}
    assert "bill-refund" not in ids  # draft
    assert "print-old" not in ids  # archived: not even indexed
    # The incident resolved with the draft still counts as a prior incident.
    assert "T-6" in ids
    manager = ask(
        indexed, "customer charged twice refund duplicate", k=20, viewer=Viewer(include_drafts=True)
    )
    assert "bill-refund" in {r.id for r in manager.results}


def test_public_audience_sees_only_validated_public_articles(indexed):
    results = ask(
        indexed, "mailbox full cannot send", k=20, viewer=Viewer(audience="public")
    ).results
    assert results and all(r.kind == "article" for r in results)
    assert {r.id for r in results} == {"mail-quota"}


def test_filters_by_product_and_category(indexed):
    results = ask(indexed, "something is broken", k=20, filters=Filters(product="email")).results
    assert results and {r.product for r in results} == {"Email"}
    results = ask(
        indexed, "something is broken", k=20, filters=Filters(category="hardware")
    ).results
    assert results and {r.category for r in results} == {"hardware"}


def test_empty_query_is_refused(indexed):
    with pytest.raises(ValidationError):
        ask(indexed, "   ")


def test_fts_syntax_in_user_text_is_inert(indexed):
    for text in ['vpn" OR title:* NEAR(', "AND OR NOT", '"""', "col:val*", "^ - + ( )"]:
        ask(indexed, text)  # no sqlite3.OperationalError
    assert fts_match_expression(['a"b', "c"]) == '"a""b" OR "c"'


def test_new_incidents_are_searchable_without_kb_index(indexed):
    indexed.suggester().ensure_state(indexed.store())
    indexed.upsert_incidents(
        [
            Incident(
                id="NEW-1",
                title="badge reader rejects card",
                description="door badge reader blinks red for my badge",
                resolution="Re-encoded the badge.",
                status="resolved",
            )
        ]
    )
    results = ask(indexed, "badge reader blinks red at the door").results
    assert results[0].id == "NEW-1"


def test_suggestions_are_recorded_with_their_results(indexed):
    store = indexed.store()
    suggestion = indexed.suggester().suggest(
        store, SuggestRequest(description="mailbox full"), principal="ana"
    )
    row = store.get_suggestion(suggestion.id)
    assert [r["id"] for r in row["results"]] == [r.id for r in suggestion.results]
    assert row["principal"] == "ana"


def test_nonsense_is_flagged_no_good_match(indexed):
    assert ask(indexed, "zqxj wvut plmk").no_good_match
    assert not ask(indexed, "vpn tunnel disconnects every few minutes on home wifi").no_good_match


def test_index_fits_a_store_too_small_for_any_length_bucket(service):
    """30-39 replayable short incidents: enough to fit, too few for any length bucket."""
    articles = scan_articles(DATA / "articles").parsed
    service.store().upsert_articles([p.article for p in articles])
    service.store().upsert_incidents(
        [
            Incident(
                id=f"VPN-{n}",
                title="vpn drops",
                description=f"vpn disconnects again at site {n}",
                resolution="Reinstalled the client",
                article_id="net-vpn-drops",
            )
            for n in range(35)
        ]
    )
    service.index()
    profile = service.store().latest_ranking_profile(service.embedder().model_id)
    assert profile["source"] == "fitted" and profile["fitted"]["replay_queries"] == 35
    assert profile["fitted"]["buckets"] == {"short": 35}
    # Too few for a bucket of its own: every length is ranked by the store-wide choice.
    assert len(set(profile["fitted"]["chosen"].values())) == 1


def test_term_counts_are_remembered_but_new_words_are_found_at_once(indexed):
    from kb.lexical import stems as stem_all

    store = indexed.store()
    state = indexed.suggester().ensure_state(store)
    calls = []
    original = store.term_document_counts

    def counting(wanted):
        calls.append(list(wanted))
        return original(wanted)

    store.term_document_counts = counting
    try:
        words = stem_all(["vpn", "printer", "zzqxunseen"])
        first = state.term_counts(store, words)
        assert first["vpn"] == original(["vpn"])["vpn"] > 0 and "zzqxunseen" not in first
        again = state.term_counts(store, words)
        assert again == first
        # Known counts are not asked again; a word in no chunk is, every time.
        assert calls == [words, ["zzqxunseen"]]
    finally:
        del store.term_document_counts


def test_frequent_terms_are_read_at_load_on_a_large_store(indexed, monkeypatch):
    import search.state as state_module

    store = indexed.store()
    monkeypatch.setattr(state_module, "FREQUENT_TERMS_FROM_CHUNKS", 1)
    monkeypatch.setattr(state_module, "FREQUENT_TERM_CHUNKS", 2)
    state = state_module.SearchState.load(store, indexed.index_root, indexed.embedder().model_id)
    frequent = store.frequent_terms(2)
    assert frequent and all(count >= 2 for count in frequent.values())
    assert state._frequent_terms == frequent
    assert state.term_counts(store, list(frequent)[:3]) == {
        t: frequent[t] for t in list(frequent)[:3]
    }


def test_full_width_text_is_read_as_the_characters_it_stands_for(indexed):
    full_width = "".join(
        chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" for c in "vpn keeps disconnecting"
    )
    assert full_width != "vpn keeps disconnecting"
    plain = ask(indexed, "vpn keeps disconnecting")
    wide = ask(indexed, full_width)
    assert [r.id for r in wide.results] == [r.id for r in plain.results]
    assert wide.no_good_match == plain.no_good_match
    # Stored text is normalised the same way: a full-width incident is found by plain words.
    indexed.upsert_incidents(
        [
            Incident(
                id="FW-1",
                title="",
                description="\uff42\uff41\uff44\uff47\uff45 reader blinks red",
                resolution="Re-encoded the badge.",
                status="resolved",
            )
        ]
    )
    assert ask(indexed, "badge reader blinks red").results[0].id == "FW-1"
