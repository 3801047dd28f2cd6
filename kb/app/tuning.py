"""`kb tune`: adapt the embedding model to the store's own resolved incidents, safely.

1. Groups of texts that share a resolution come from the store: each article with the
   incidents resolved with it (and its sections), incidents sharing a resolution that the
   ranking profile collapses, and agents' recorded choices (the query they typed joins the
   group of the result they used; at most a few per agent per day, so no single agent
   steers the model).
2. A seeded tenth of the incidents is held out of training; those with a near-copy among the
   others (the same text filed twice) are left out of the comparison. Both the current model
   and the candidate rank the held-out incidents against all the others (the service's soft
   vote); the candidate goes on only on a clear win: accuracy@1 higher by ``CLEAR_WIN`` and
   MRR not lower.
2b. Then the whole shipped ranking decides: the candidate's index is built and its ranking
   profile fitted (fusion, classifier, thresholds, by the store's replay); unless that replay
   ranks at least ``CLEAR_WIN`` better (accuracy@1 + MRR) than the current profile's, nothing
   is published and the current model keeps serving.
3. A kept candidate is saved as a new version under ``<home>/models/``, every chunk is
   embedded with it (cached per model, so a rollback costs no re-embedding), and a new index
   built with it is published. Publishing is the switch: until then the current model and
   index keep serving, and an interrupted run changes nothing that serves.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.chunking import incident_text
from indexer.embedders import Embedder
from indexer.finetune import FineTuneSettings, fine_tune, plan_steps
from kb.app.service import ProfileRejected, Service
from kb.errors import KBError, NotEnoughDataError
from kb.store import Store
from search.profile import RankingProfile

HOLDOUT_SHARE = 0.1
FEEDBACK_PER_AGENT_PER_DAY = 20
EVAL_DEPTH = 30
# A tuned model must beat the current one by this much (accuracy@1; accuracy@1 + MRR on the
# profile's replay) to switch: a few hundred held-out incidents cannot tell a near-tie apart.
CLEAR_WIN = 0.01
COPY_SIMILARITY = 0.98


@dataclass
class TuningData:
    train_groups: dict[str, list[str]]
    corpus: list[tuple[str, str]]  # (text, group) the held-out queries are ranked against
    queries: list[tuple[str, str]]  # (held-out text, its group)
    feedback_pairs: int = 0


@dataclass
class TuneReport:
    switched: bool
    reason: str
    current: dict[str, float] = field(default_factory=dict)
    candidate: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    train_seconds: float = 0.0
    total_seconds: float = 0.0
    steps: int = 0
    examples: int = 0
    groups: int = 0
    held_out: int = 0
    feedback_pairs: int = 0
    index_version: str = ""
    replay: dict[str, float | None] = field(
        default_factory=dict
    )  # whole-ranking replay, both models

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _article_texts(store: Store) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = defaultdict(list)
    for row in store.chunk_rows():
        if row["doc_kind"] == "article":
            texts[row["doc_id"]].append(row["text"])
    return texts


def collect_tuning_data(store: Store, profile: RankingProfile, *, seed: int = 13) -> TuningData:
    """Training groups, and a held-out split with the corpus to rank it against."""
    from search.state import resolution_key

    collapse = set(profile.collapse)
    articles = {
        a.id: a for a in store.iter_articles() if a.status in ("validated", "not_validated")
    }
    members: dict[str, list[str]] = defaultdict(list)
    for incident in store.iter_incidents():
        if not incident.is_prior_resolution:
            continue
        text = incident_text(incident.title, incident.description)
        if incident.article_id in articles:
            members["a:" + incident.article_id].append(text)
        else:
            key = resolution_key(incident.resolution)
            if key in collapse:
                members[key].append(text)
    rng = random.Random(seed)
    queries: list[tuple[str, str]] = []
    train: dict[str, list[str]] = defaultdict(list)
    for group in sorted(members):
        texts = members[group][:]
        rng.shuffle(texts)
        held = max(1, round(len(texts) * HOLDOUT_SHARE)) if len(texts) >= 3 else 0
        queries += [(t, group) for t in texts[:held]]
        train[group] += texts[held:]
    corpus = [(t, g) for g, texts in train.items() for t in texts]
    article_texts = _article_texts(store)
    for article_id in articles:
        group = "a:" + article_id
        for text in article_texts.get(article_id, []):
            corpus.append((text, group))
            train[group].append(text)
    feedback = 0
    for query, group in feedback_pairs(store, FEEDBACK_PER_AGENT_PER_DAY):
        if group in train:
            train[group].append(query)
            feedback += 1
    return TuningData(dict(train), corpus, queries, feedback)


def feedback_pairs(store: Store, per_agent_per_day: int) -> list[tuple[str, str]]:
    """(query, group of the result used) from agents' choices, bounded per agent and day."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    pairs = []
    for row in store.used_feedback():
        key = (row["agent"], row["day"])
        if counts[key] >= per_agent_per_day:
            continue
        shown = {r["id"]: r for r in row["results"]}
        group = shown.get(row["used_id"], {}).get("group")
        if group and not group.startswith("i:"):
            counts[key] += 1
            pairs.append((row["query"], group))
    return pairs


def rank_accuracy(
    embedder: Embedder, data: TuningData, *, tau: float, batch_size: int = 64
) -> dict[str, float]:
    """Accuracy@1 and MRR of the held-out incidents' groups under the soft vote."""
    if not data.queries:
        return {"accuracy_at_1": 0.0, "mrr": 0.0}
    corpus_vectors = embedder.embed([t for t, _ in data.corpus], batch_size=batch_size)
    query_vectors = embedder.embed([t for t, _ in data.queries], batch_size=batch_size)
    labels = [g for _, g in data.corpus]
    hits = rr = 0.0
    for start in range(0, len(query_vectors), 256):
        scores = query_vectors[start : start + 256] @ corpus_vectors.T
        for row, (_, truth) in enumerate(data.queries[start : start + 256]):
            top = np.argpartition(-scores[row], min(EVAL_DEPTH, len(labels) - 1))[:EVAL_DEPTH]
            top = top[np.argsort(-scores[row][top])]
            best = float(scores[row][top[0]])
            votes: dict[str, float] = defaultdict(float)
            for j in top:
                votes[labels[j]] += math.exp((float(scores[row][j]) - best) / tau)
            order = sorted(votes, key=lambda g: -votes[g])
            if order and order[0] == truth:
                hits += 1
            if truth in order:
                rr += 1.0 / (order.index(truth) + 1)
    n = len(data.queries)
    return {"accuracy_at_1": round(hits / n, 4), "mrr": round(rr / n, 4)}


def without_near_copies(embedder: Embedder, data: TuningData, batch_size: int = 64) -> TuningData:
    """The held-out queries that have no near-copy (cosine >= COPY_SIMILARITY) in the corpus."""
    if not data.queries or not data.corpus:
        return data
    corpus = embedder.embed([t for t, _ in data.corpus], batch_size=batch_size)
    queries = embedder.embed([t for t, _ in data.queries], batch_size=batch_size)
    best = (queries @ corpus.T).max(axis=1)
    keep = [
        pair
        for pair, score in zip(data.queries, best.tolist(), strict=True)
        if score < COPY_SIMILARITY
    ]
    return TuningData(data.train_groups, data.corpus, keep, data.feedback_pairs)


def clear_win(candidate: dict[str, float], current: dict[str, float]) -> bool:
    return (
        candidate["accuracy_at_1"] >= current["accuracy_at_1"] + CLEAR_WIN
        and candidate["mrr"] >= current["mrr"]
    )


def replay_objective(profile: RankingProfile) -> float | None:
    """Accuracy@1 + MRR of the shipped ranking on the profile's own replay (None: not fitted)."""
    fitted = profile.fitted or {}
    if profile.source != "fitted" or fitted.get("replay_accuracy_at_1") is None:
        return None
    return float(fitted["replay_accuracy_at_1"]) + float(fitted.get("replay_mrr") or 0.0)


def models_root(home: Path) -> Path:
    return home / "models"


def _history_path(home: Path) -> Path:
    return models_root(home) / "history.json"


def read_history(home: Path) -> list[dict[str, Any]]:
    try:
        return json.loads(_history_path(home).read_text())
    except FileNotFoundError:
        return []


def append_history(home: Path, entry: dict[str, Any]) -> None:
    history = read_history(home) + [entry]
    path = _history_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(history, indent=2))
    os.replace(tmp, path)


def new_model_version() -> str:
    return "tuned-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def tune(
    service: Service,
    *,
    settings: FineTuneSettings | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    dry_run: bool = False,
) -> TuneReport:
    """Fine-tune, compare, and switch only when better (see the module docstring).

    Raises NotEnoughDataError (and changes nothing) when the store is too small.
    """
    began = time.monotonic()
    settings = settings or FineTuneSettings(threads=service.config.cpu_threads())
    store = service.store()
    current = service.embedder()
    current_folder = getattr(current, "folder", None)
    if current_folder is None:
        raise KBError(
            "kb tune needs a sentence-transformers model folder (not KB_EMBED_BACKEND=hashing)"
        )
    profile = RankingProfile.from_dict(store.latest_ranking_profile(current.model_id))
    data = collect_tuning_data(store, profile)
    steps, _ = plan_steps(data.train_groups, settings)
    if len(data.queries) < 20:
        raise NotEnoughDataError(
            f"kb tune needs at least 20 held-out incidents to compare models; the store gives {len(data.queries)}"
        )
    report = TuneReport(
        switched=False,
        reason="",
        steps=steps,
        groups=len(data.train_groups),
        examples=sum(len(v) for v in data.train_groups.values()),
        held_out=len(data.queries),
        feedback_pairs=data.feedback_pairs,
    )
    data = without_near_copies(current, data)
    if len(data.queries) < 20:
        raise NotEnoughDataError(
            f"kb tune needs at least 20 held-out incidents without a near-copy; the store gives {len(data.queries)}"
        )
    report.held_out = len(data.queries)
    report.current = rank_accuracy(current, data, tau=profile.vote_tau)
    home = service.home
    version = new_model_version()
    staging = models_root(home) / f".tmp-{version}"
    final = models_root(home) / version
    shutil.rmtree(staging, ignore_errors=True)

    def step_progress(step: int, total: int, loss: float) -> None:
        if progress:
            progress("training", step, total)

    try:
        result = fine_tune(
            Path(current_folder), data.train_groups, staging, settings, step_progress
        )
        report.train_seconds = result.seconds
        report.steps = result.steps
        candidate = service.embedder_for_folder(staging, threads=settings.threads)
        report.candidate = rank_accuracy(candidate, data, tau=profile.vote_tau)
        better = clear_win(report.candidate, report.current)
        if not better or dry_run:
            report.reason = (
                "dry run: nothing switched"
                if better
                else "the tuned model was not clearly better on the held-out incidents; nothing switched"
            )
            shutil.rmtree(staging, ignore_errors=True)
            report.total_seconds = round(time.monotonic() - began, 1)
            return report
        os.replace(staging, final)
        candidate = service.embedder_for_folder(final, threads=settings.threads)
        before = replay_objective(profile)

        def whole_ranking(fitted: RankingProfile) -> str:
            after = replay_objective(fitted)
            report.replay = {"current": before, "candidate": after}
            if before is not None and (after is None or after < before + CLEAR_WIN):
                return (
                    f"the shipped ranking with the tuned model was not clearly better on the store's replay "
                    f"(accuracy@1 + MRR {after} vs {before:.4f}); nothing switched"
                )
            return ""

        try:
            index_report = service.index(embedder=candidate, accept=whole_ranking)
        except ProfileRejected as exc:
            shutil.rmtree(final, ignore_errors=True)
            report.reason = str(exc)
            report.total_seconds = round(time.monotonic() - began, 1)
            return report
        service.use_embedder(candidate)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    append_history(
        home,
        {
            "version": version,
            "model_path": str(final.relative_to(home)),
            "previous_model_path": service.model_path_for_index(current),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "current": report.current,
            "candidate": report.candidate,
        },
    )
    report.switched = True
    report.model_version = version
    report.index_version = index_report.version
    report.reason = "the tuned model ranks held-out incidents better; it now serves"
    report.total_seconds = round(time.monotonic() - began, 1)
    return report


def rollback(service: Service) -> dict[str, Any]:
    """Go back to the model used before the current one; its vectors are still cached."""
    from indexer.embedders import resolve_model_folder
    from indexer.index_files import read_config

    home = service.home
    current_path = read_config(service.index_root).get("model_path", "")
    history = read_history(home)
    entry = next(
        (
            e
            for e in reversed(history)
            if e.get("model_path") == current_path and "previous_model_path" in e
        ),
        None,
    )
    if entry is None:
        raise KBError("the model in use was not made by kb tune; there is nothing to roll back to")
    folder = resolve_model_folder("", entry["previous_model_path"], home)
    previous = service.embedder_for_folder(folder)
    index_report = service.index(embedder=previous)
    service.use_embedder(previous)
    append_history(
        home,
        {
            "rollback_from": current_path,
            "model_path": entry["previous_model_path"],
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return {"model_path": entry["previous_model_path"], "index_version": index_report.version}
