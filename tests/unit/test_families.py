"""Resolution families, suggested steps, and the rules that let free-text stores rank."""

import random

import numpy as np

from search.families import Families, find_families, purity
from search.profile import RankingProfile, default_blends
from search.state import resolution_key
from search.steps import family_steps, generic_steps, split_steps, steps_note

DIM = 32


def _topic_vectors(topics: int, per_topic: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Incidents about ``topics`` different problems: alike within a topic, not across."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, DIM))
    out = {}
    for t in range(topics):
        for n in range(per_topic):
            v = centres[t] + 0.35 * rng.normal(size=DIM)
            out[f"t{t}-{n:02d}"] = (v / np.linalg.norm(v)).astype(np.float32)
    return out


PASSWORD = (
    "Reset AD password, user confirmed",
    "pw reset in AD + unlocked acct, user confirmed",
    "reset the AD password; user confirmed login",
    "AD password reset, acct unlocked, user confirmed",
    "Reset AD pasword and unlocked account, user confirmed",
)
PRINTER = (
    "reinstalled printer driver, test page ok",
    "printer driver reinstalled -> test page printed",
    "Reinstall of printer driver; test page OK",
    "removed and reinstalled printer driver, test page ok",
    "reinstalled the printer drivers, printed test page",
)


def _notes(texts_by_topic: dict[int, tuple[str, ...]], vectors: dict[str, np.ndarray]) -> dict:
    notes: dict[str, tuple[str, list[str]]] = {}
    rng = random.Random(5)
    for incident in sorted(vectors):
        topic = int(incident[1:].split("-")[0])
        if topic not in texts_by_topic:
            continue
        text = rng.choice(texts_by_topic[topic]) + f" #{incident}"  # every note its own text
        notes[resolution_key(text)] = (text, [incident])
    return notes


def test_paraphrased_notes_of_one_problem_form_one_family_with_a_stable_id():
    vectors = _topic_vectors(6, 12)
    notes = _notes({0: PASSWORD, 1: PRINTER}, vectors)
    families = find_families(notes, vectors)
    label = {
        i: ("password" if i.startswith("t0-") else "printer")
        for _, ids in notes.values()
        for i in ids
    }
    grouped = {
        i: families.key_of[k] for k, (_, ids) in notes.items() if k in families.key_of for i in ids
    }
    assert purity(families.key_of, label, grouped)["purity"] == 1.0
    assert len(families.info) >= 2 and max(f["size"] for f in families.info.values()) >= 6
    for fid, facts in families.info.items():
        assert fid.startswith("f:") and facts["representative"]
        assert facts["size"] == sum(
            len(ids) for k, (_, ids) in notes.items() if families.key_of.get(k) == fid
        )
    # The same store, read in another order, gives the same families under the same ids.
    shuffled = dict(sorted(notes.items(), key=lambda item: item[1][0][::-1]))
    assert find_families(shuffled, vectors).key_of == families.key_of


def test_a_canned_step_pasted_for_unrelated_problems_is_no_family():
    vectors = _topic_vectors(12, 3)
    notes = {}
    for incident in sorted(vectors):
        text = f"Restarted in safe mode, customer to call back ({incident})"
        notes[resolution_key(text)] = (text, [incident])
    families = find_families(notes, vectors)
    for fid, facts in families.info.items():
        topics = {
            k.split("-")[0] for k, f in notes.items() if families.key_of.get(k) == fid for k in f[1]
        }
        assert len(topics) == 1, facts


def test_two_labels_used_word_for_word_are_never_merged():
    vectors = _topic_vectors(1, 20)
    ids = sorted(vectors)
    notes = {
        resolution_key("Reset AD password"): ("Reset AD password", ids[:10]),
        resolution_key("Reset AD passwords"): ("Reset AD passwords", ids[10:]),
    }
    assert find_families(notes, vectors).key_of == {}


def test_families_survive_the_profile_round_trip():
    families = Families(
        {"r:1": "f:a"}, {"f:a": {"size": 2, "representative": "x"}}, {"families": 1}
    )
    profile = RankingProfile.from_dict(RankingProfile(families=families.to_dict()).to_dict())
    assert Families.from_dict(profile.families) == families
    assert profile.family_summary()["examples"][0]["family"] == "f:a"


def test_steps_are_cut_where_agents_cut_them():
    assert split_steps("1) cleared cache 2) reset the password -> user confirmed") == [
        "cleared cache",
        "reset the password",
        "user confirmed",
    ]
    assert split_steps("Reset AD password; unlocked account. Closing ticket") == [
        "Reset AD password",
        "unlocked account",
        "Closing ticket",
    ]


def test_suggested_steps_are_the_agents_own_words_with_their_incidents():
    notes = {
        "f:pw": [
            ("i1", "reset AD password; unlocked account; closing as resolved"),
            ("i2", "Reset AD pasword -> unlocked the account -> closing as resolved"),
            ("i3", "reset AD password; checked MFA; closing as resolved"),
            ("i4", "restarted laptop; closing as resolved"),
        ],
        "f:pr": [
            ("i5", "reinstalled printer driver; closing as resolved"),
            ("i6", "reinstalled printer drivers; closing as resolved"),
        ],
        "f:vpn": [
            ("i7", "renewed VPN certificate; closing as resolved"),
            ("i8", "VPN certificate renewed; closing as resolved"),
        ],
    }
    generic = generic_steps(notes)
    assert "closing as resolved" in generic
    steps = family_steps(notes, generic)["f:pw"]
    written = {text for _, note in notes["f:pw"] for text in split_steps(note)}
    assert all(s["text"] in written for s in steps)  # extractive: nothing invented
    by_text = {s["text"].lower(): s for s in steps}
    assert by_text["reset ad password"]["incidents"] == 3
    assert by_text["reset ad password"]["incident_ids"] == ["i1", "i2", "i3"]
    assert "restarted laptop" not in by_text and "closing as resolved" not in by_text
    assert steps_note(steps).startswith("1. ")


def test_without_replay_evidence_reports_of_some_length_rank_by_fusion():
    blends = default_blends()
    assert blends["short"]["kind"] == "fused" and blends["short"]["weight"] == 0.1
    assert blends["medium"]["kind"] == "rrf" and blends["long"]["kind"] == "rrf"


def test_a_result_outside_every_class_is_never_pushed_down_by_the_classifier():
    from search.doc_table import ChunkDocs, DocTable
    from search.ranking import Blend, Candidates, Viewer, rank_groups
    from search.state import DocInfo, SearchState

    def incident(doc_id: str, res_key: str) -> DocInfo:
        return DocInfo(
            "incident", doc_id, doc_id, "note", "", "", "resolved", "internal", "", "", "", res_key
        )

    docs = DocTable(
        [incident("lone", "r:lone"), incident("c1", "r:canned"), incident("c2", "r:canned")]
    )
    state = SearchState(None, model_id="m", version="v", seq=0, profile=RankingProfile())
    state.docs = docs
    state.chunk_doc = ChunkDocs(
        [(1, ("incident", "lone")), (2, ("incident", "c1")), (3, ("incident", "c2"))], docs
    )
    cands = Candidates(dense={1: 0.9, 2: 0.7, 3: 0.6})
    groups = rank_groups(
        cands,
        state,
        Blend("fused", 0.0, 0.05, 0.5),
        depth=10,
        collapse={"r:canned"},
        viewer=Viewer(),
        class_logp={"r:canned": -0.01, "r:other": -5.0},
    )
    assert [g.group for g in groups][0] == "i:lone"


def test_free_text_notes_rarely_repeat_and_are_reproducible():
    from scripts.freenotes import close_note

    def notes(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [
            close_note("Lost, stolen and blocked cards", "pin_blocked", rng) for _ in range(300)
        ]

    first = notes(1)
    assert len(set(first)) >= 290
    assert first == notes(1)
    # Notes of one resolution share its steps in some wording.
    assert sum("pin" in n.lower() for n in first) > 150


def test_eval_judges_a_family_by_the_codes_of_most_of_its_incidents():
    from kb.app.evaluation import GroupMembers
    from search.doc_table import DocTable
    from search.state import DocInfo

    def incident(doc_id: str, res_key: str) -> DocInfo:
        return DocInfo(
            "incident",
            doc_id,
            doc_id,
            f"note {doc_id}",
            "",
            "",
            "resolved",
            "internal",
            "",
            "",
            "",
            res_key,
        )

    class State:
        docs = DocTable(
            [incident("a", "f:1"), incident("b", "f:1"), incident("c", "f:1"), incident("d", "r:x")]
        )

    members = GroupMembers(State(), {"a": "pw", "b": "pw", "c": "printer", "d": "printer"})
    assert "pw" in members.by_group["f:1"] and "printer" not in members.by_group["f:1"]
    assert "printer" in members.by_group["r:x"] and "printer" in members.by_group["i:c"]


def test_kb_index_shows_a_few_families_and_all_of_them_when_verbose(capsys):
    from scripts.cli import FAMILIES_SHOWN, echo_families

    rows = [
        {"family": f"f:{n}", "size": 20 - n, "notes": 3, "representative": f"note {n}", "steps": []}
        for n in range(FAMILIES_SHOWN + 3)
    ]
    summary = {
        "notes": 100,
        "families": len(rows),
        "incidents_grouped": 90,
        "incidents": 120,
        "largest": 20,
        "examples": rows,
    }
    echo_families(summary, verbose=False)
    short = capsys.readouterr().out
    assert "Resolution families: 8 families of 90 incidents" in short
    assert "f:0" in short and f"f:{FAMILIES_SHOWN}" not in short and "3 more families" in short
    echo_families(summary, verbose=True)
    assert f"f:{FAMILIES_SHOWN + 2}" in capsys.readouterr().out


def test_kb_index_says_none_when_too_few_notes_to_group(capsys):
    """A store with a single distinct note gets the short summary (no grouped counts)."""
    from scripts.cli import echo_families
    from search.families import find_families

    summary = find_families({"r:1": ("reset the password", ["1", "2"])}, {}).summary
    summary["notes"] = 1
    echo_families(summary, verbose=False)
    assert "Resolution families: none among 1 distinct note(s)" in capsys.readouterr().out


def test_a_family_scores_its_best_incident_and_does_not_outvote_a_closer_fix():
    from search.doc_table import ChunkDocs, DocTable
    from search.ranking import Viewer, vote
    from search.state import DocInfo, SearchState

    def incident(doc_id: str, res_key: str) -> DocInfo:
        return DocInfo(
            "incident", doc_id, doc_id, "note", "", "", "resolved", "internal", "", "", "", res_key
        )

    docs = DocTable([incident("near", "r:near"), *(incident(f"m{n}", "f:big") for n in range(6))])
    state = SearchState(None, model_id="m", version="v", seq=0, profile=RankingProfile())
    state.docs = docs
    state.chunk_doc = ChunkDocs([], docs)
    scores = {
        ("incident", "near"): (0.72, 1),
        **{("incident", f"m{n}"): (0.7 - 0.001 * n, 2 + n) for n in range(6)},
    }
    groups = vote(scores, state, tau=0.2, depth=30, collapse={"f:big"}, viewer=Viewer())
    assert [g.group for g in groups] == ["i:near", "f:big"]
    assert groups[1].score == 0.7 and len(groups[1].members) == 6


def test_the_resolution_note_of_a_result_with_steps_carries_the_steps():
    from kb.models import SuggestionResult
    from web.serialize import result_json

    steps = [
        {"text": "reset AD password", "incidents": 3, "incident_ids": ["i1", "i 2"]},
        {"text": "unlocked account", "incidents": 2, "incident_ids": ["i1"]},
    ]
    result = SuggestionResult(
        rank=1,
        kind="incident",
        id="i1",
        title="t",
        resolution="pw reset, user ok",
        snippet="",
        score=0.9,
        steps=steps,
        family={"id": "f:1", "size": 3},
    )
    data = result_json(result)
    assert "1. reset AD password\n2. unlocked account" in data["resolution_note"]
    assert data["steps"][0]["incident_urls"] == ["/incidents/i1", "/incidents/i%202"]
    assert data["family"]["size"] == 3
    plain = result_json(
        SuggestionResult(
            rank=1,
            kind="incident",
            id="i1",
            title="t",
            resolution="pw reset",
            snippet="",
            score=0.9,
        )
    )
    assert (
        "pw reset" in plain["resolution_note"] and plain["steps"] == [] and plain["family"] is None
    )
