"""Measure what the feedback prior changes, by replaying simulated agents' choices.

On a copy of a data home (the original is never written): the first part of a labelled
query file is asked as history, and simulated agents record a choice for each suggestion:
the right resolution when it is among the top five (agents recognise the fix), otherwise
"none helped". Optionally one noisy agent also presses "Used this" on rank 3 of every
suggestion. The rest of the queries are then ranked with and without the prior.

    python -m scripts.feedback_replay --home kb_home --queries dev.jsonl --json
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import tempfile
from pathlib import Path

import click

from kb.app.evaluation import GroupMembers, evaluate, read_labelled_queries
from kb.app.service import Service
from kb.config import load_config
from search.state import normalise_resolution
from search.suggester import SuggestRequest


def copy_home(source: Path, target: Path) -> None:
    target.mkdir(parents=True)
    with (
        sqlite3.connect(source / "kb.sqlite3") as src,
        sqlite3.connect(target / "kb.sqlite3") as dst,
    ):
        src.backup(dst)
    shutil.copytree(source / "index", target / "index")
    if (source / "models").exists():
        shutil.copytree(source / "models", target / "models")


def replay(
    home: Path,
    queries_path: Path,
    *,
    history_share: float,
    seed: int,
    noisy: bool,
    agents: int = 20,
) -> dict:
    queries = read_labelled_queries(queries_path)
    queries = [q for q in queries if q.relevant]
    random.Random(seed).shuffle(queries)
    cut = int(len(queries) * history_share)
    history, test = queries[:cut], queries[cut:]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "home"
        copy_home(home, work)
        service = Service(load_config(home=str(work)))
        store, suggester = service.store(), service.suggester()
        members = GroupMembers(suggester.ensure_state(store))
        rng = random.Random(seed)
        used = none = 0
        for query in history:
            suggestion = suggester.suggest(
                store, SuggestRequest(description=query.text, k=5), principal="replay"
            )
            wanted = {normalise_resolution(r) for r in query.relevant} | set(query.relevant)
            right = next((r for r in suggestion.results if members.names(r) & wanted), None)
            agent = f"agent-{rng.randrange(agents)}"
            if right is not None:
                store.record_feedback(suggestion.id, outcome="used", used_id=right.id, agent=agent)
                used += 1
            else:
                store.record_feedback(
                    suggestion.id, outcome="none_helped", used_id=None, agent=agent
                )
                none += 1
            if noisy and len(suggestion.results) >= 3:
                store.record_feedback(
                    suggestion.id,
                    outcome="used",
                    used_id=suggestion.results[2].id,
                    agent="noisy-agent",
                )
        suggester.refresh_priors(store, force=True)
        without = evaluate(suggester, store, test, use_feedback=False)
        with_prior = evaluate(suggester, store, test)
        service.close()
    keys = ("accuracy_at_1", "mrr", "recall_at_5")
    return {
        "history_queries": len(history),
        "test_queries": len(test),
        "used": used,
        "none_helped": none,
        "noisy_agent": noisy,
        "groups_with_prior": len(suggester.priors),
        "without_prior": {k: without[k] for k in keys},
        "with_prior": {k: with_prior[k] for k in keys},
    }


@click.command()
@click.option(
    "--home",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Data home to copy.",
)
@click.option(
    "--queries", "queries_path", required=True, type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--history-share", default=0.5, show_default=True, help="Share of queries replayed as history."
)
@click.option("--seed", default=7, show_default=True)
@click.option("--noisy-agent", is_flag=True, help="Add one agent who always uses rank 3.")
@click.option("--json", "as_json", is_flag=True)
def main(
    home: str, queries_path: str, history_share: float, seed: int, noisy_agent: bool, as_json: bool
) -> None:
    """Replay simulated choices on a copy of HOME and compare ranking with and without the prior."""
    result = replay(
        Path(home), Path(queries_path), history_share=history_share, seed=seed, noisy=noisy_agent
    )
    click.echo(
        json.dumps(result, indent=2)
        if as_json
        else f"without prior {result['without_prior']}\nwith prior    {result['with_prior']}"
    )


if __name__ == "__main__":
    main()
