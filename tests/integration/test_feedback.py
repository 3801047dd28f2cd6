"""The feedback prior: used resolutions rise, passed-over ones sink, one agent cannot steer."""

from datetime import UTC, datetime, timedelta

import pytest

from search.feedback import DEFAULT_WEIGHT, compute_priors, feedback_evidence
from search.suggester import SuggestRequest

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines

QUERY = "keyboard and mailbox"  # two resolutions score close together


def ask(service, text=QUERY, principal="sim", **kwargs):
    return service.suggester().suggest(
        service.store(), SuggestRequest(description=text, k=5, **kwargs), principal=principal
    )


def choose(service, used_rank, agent, *, text=QUERY, when=None, principal=None):
    """One agent's choice; by default the agent signed in (the suggestion is theirs)."""
    suggestion = ask(service, text, principal=principal or agent)
    used = suggestion.results[used_rank - 1].id if used_rank else None
    service.store().record_feedback(
        suggestion.id, outcome="used" if used else "none_helped", used_id=used, agent=agent
    )
    if when is not None:
        service.store().db.execute(
            "UPDATE feedback SET updated_at = ? WHERE suggestion_id = ?", [when, suggestion.id]
        )
    return suggestion


def refreshed(service):
    suggester = service.suggester()
    suggester.refresh_priors(service.store(), force=True)
    return suggester


def test_a_resolution_agents_keep_choosing_rises(indexed):
    before = ask(indexed)
    second = before.results[1]
    for n in range(30):
        choose(indexed, 2, agent=f"agent-{n}")
    refreshed(indexed)
    after = ask(indexed)
    assert after.results[0].id == second.id
    plain = ask(indexed, use_feedback=False)
    assert [r.id for r in plain.results] == [r.id for r in before.results]


def test_passed_over_results_sink(indexed):
    top = ask(indexed).results[0]
    for n in range(12):
        choose(indexed, None, agent=f"agent-{n}")  # none helped: everything shown was passed over
    suggester = refreshed(indexed)
    assert suggester.priors[top.group] < 0
    assert ask(indexed).results[0].raw_score < top.raw_score


def test_one_noisy_agent_has_bounded_influence(indexed):
    before = ask(indexed)
    for _ in range(200):
        choose(indexed, 3, agent="noisy")
    evidence = feedback_evidence(indexed.store())
    third = before.results[2].group
    assert evidence[third][0] == pytest.approx(1.0, abs=0.01)  # counted once: same agent, same day
    suggester = refreshed(indexed)
    assert suggester.priors[third] <= DEFAULT_WEIGHT / 21 + 1e-9
    assert ask(indexed).results[0].id == before.results[0].id


def test_old_choices_fade(indexed):
    recent, old = datetime.now(UTC), datetime.now(UTC) - timedelta(days=360)
    choose(indexed, 2, agent="a", when=recent.isoformat())
    choose(indexed, 2, agent="b", when=old.isoformat())
    evidence = feedback_evidence(indexed.store())
    uses = max(v[0] for v in evidence.values())
    assert 1.0 < uses < 1.1  # the year-old choice counts for 1/16


def test_prior_is_zero_without_feedback(indexed):
    assert compute_priors(indexed.store()) == {}


def test_one_token_inventing_agent_names_has_bounded_influence(indexed):
    before = ask(indexed)
    third = before.results[2].group
    for n in range(150):
        choose(indexed, 3, agent=f"invented-{n}", principal="one-integration-token")
    evidence = feedback_evidence(indexed.store())
    assert evidence[third][0] == pytest.approx(1.0, abs=0.01)  # one token, one day: counted once
    assert ask(indexed).results[0].id == before.results[0].id
