"""kb tune's decision rules: a clear win only, near-copies out of the comparison."""

import numpy as np

from kb.app.tuning import CLEAR_WIN, TuningData, clear_win, replay_objective, without_near_copies
from search.profile import RankingProfile


class Words:
    """Each text's vector: one dimension per distinct word, normalised."""

    def embed(self, texts, batch_size=64):
        vocab = sorted({w for t in texts for w in t.split()} | {"x", "y", "z", "a", "b", "c"})
        out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.split():
                out[row, vocab.index(word)] += 1
            out[row] /= np.linalg.norm(out[row])
        return out


def test_only_a_clear_win_switches():
    current = {"accuracy_at_1": 0.80, "mrr": 0.85}
    assert not clear_win({"accuracy_at_1": 0.80 + CLEAR_WIN / 2, "mrr": 0.9}, current)
    assert not clear_win({"accuracy_at_1": 0.9, "mrr": 0.84}, current)
    assert clear_win({"accuracy_at_1": 0.80 + 2 * CLEAR_WIN, "mrr": 0.85}, current)


def test_held_out_queries_with_a_near_copy_are_left_out():
    data = TuningData({}, [("a b c", "g1"), ("x y z", "g2")], [("a b c", "g1"), ("x y", "g2")])
    kept = without_near_copies(Words(), data)
    assert kept.queries == [("x y", "g2")]


def test_replay_objective_needs_a_fitted_profile():
    assert replay_objective(RankingProfile()) is None
    fitted = RankingProfile(
        source="fitted", fitted={"replay_accuracy_at_1": 0.5, "replay_mrr": 0.6}
    )
    assert replay_objective(fitted) == 1.1
