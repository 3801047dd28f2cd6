"""Replay timestamped reports with known duplicate links through the duplicate detector.

Each report arrives in creation order and is compared, as `suggest` does, with the reports
that arrived in the previous WINDOW hours (every earlier report counts as still open: the
worst case for precision), same product only. A flagged pair is right when the links say
one duplicates the other. Prints precision and recall (over the known pairs whose earlier
report falls inside the window) for several similarity thresholds.

    python -m scripts.duplicate_replay ../shared/data/asf-jira-dup-bugs --hours 72
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import click

from kb.config import DEFAULT_EMBED_BACKEND, load_config
from kb.redaction import Redactor
from search.duplicates import text_of


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--hours", default=72.0, show_default=True, help="How far back open reports are compared."
)
@click.option("--thresholds", default="0.75,0.8,0.85,0.9,0.95", show_default=True)
@click.option("--limit", default=0, help="Only the first N reports (0: all).")
def main(folder: str, hours: float, thresholds: str, limit: int) -> None:
    from indexer.embedders import load_embedder

    reports = [
        json.loads(line)
        for line in (Path(folder) / "reports.jsonl").read_text().split("\n")
        if line.strip()
    ]
    reports = reports[:limit] if limit else reports
    ids = {r["id"] for r in reports}
    links = set()
    for line in filter(None, (Path(folder) / "duplicates.jsonl").read_text().split("\n")):
        record = json.loads(line)
        for target in record["duplicate_of"]:
            if record["id"] in ids and target in ids:
                links.add(frozenset((record["id"], target)))
    config = load_config()
    embedder = load_embedder(
        config.embed_backend or DEFAULT_EMBED_BACKEND,
        threads=config.cpu_threads(),
        cache_dir=config.home_path / "models",
    )
    redactor = Redactor()
    texts = [
        redactor.redact(text_of({"title": r["title"], "description": r.get("description") or ""}))
        for r in reports
    ]
    with click.progressbar(length=len(texts), label="embedding", file=None) as bar:
        vectors = embedder.embed(texts, progress=bar.update)
    created = [datetime.fromisoformat(r["created"].replace("+0000", "+00:00")) for r in reports]
    window = timedelta(hours=hours)
    reachable = 0
    best: list[tuple[float, str, str]] = []  # every earlier in-window same-product pair's score
    start = 0
    for i, report in enumerate(reports):
        while created[start] < created[i] - window:
            start += 1
        earlier = [j for j in range(start, i) if reports[j]["product"] == report["product"]]
        if earlier:
            scores = vectors[earlier] @ vectors[i]
            best.extend(
                (float(s), report["id"], reports[j]["id"])
                for s, j in zip(scores, earlier, strict=True)
            )
        reachable += sum(1 for j in earlier if frozenset((report["id"], reports[j]["id"])) in links)
    click.echo(
        f"{len(reports)} reports, {len(links)} known duplicate pairs, {reachable} of them with the earlier "
        f"report within {hours:g} h (what the detector can find)"
    )
    for threshold in (float(t) for t in thresholds.split(",")):
        flagged = [(a, b) for s, a, b in best if s >= threshold]
        right = sum(1 for a, b in flagged if frozenset((a, b)) in links)
        precision = right / len(flagged) if flagged else float("nan")
        recall = right / reachable if reachable else float("nan")
        click.echo(
            f"threshold {threshold:.2f}: flagged {len(flagged):5d}, right {right:4d}, "
            f"precision {precision:.3f}, recall {recall:.3f}"
        )


if __name__ == "__main__":
    main()
