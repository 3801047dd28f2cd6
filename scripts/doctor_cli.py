"""`kb doctor`: check that the index agrees with the store, and repair what can be repaired."""

from __future__ import annotations

import sys

import click

from scripts.common import AppContext, echo_json, home_option, pass_app, reports_errors


@click.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Fix what can be fixed: remove leftovers of an interrupted indexer, drop "
    "untracked chunks, run the indexer (or rebuild), then check again.",
)
@click.option(
    "--privacy",
    is_flag=True,
    help="Scan the raw bytes of the database, its WAL and the index files for unredacted "
    "secrets and personal data (or for --find TEXT), and finish pending erasures.",
)
@click.option(
    "--find",
    "needle",
    default="",
    metavar="TEXT",
    help="With --privacy: report every file that holds TEXT (any letter case; full-width and "
    "other forms NFKC folds count).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@home_option
@pass_app
@reports_errors
def doctor(app: AppContext, repair: bool, privacy: bool, needle: str, as_json: bool) -> None:
    """Check that the published index and the store agree.

    Compares chunk ids, counts and the model id, and looks for documents waiting to be
    indexed, stale documents, chunks without vectors, leftover temporary folders, a CURRENT
    pointer to a missing version and a damaged database. Exits 1 while problems remain.
    """
    from kb.app.doctor import describe, diagnose
    from kb.app.doctor import repair as repair_index

    app.require_home()
    service = app.service()
    if privacy or needle:
        _privacy(app, service, needle, as_json)
        return
    store, model_id = service.store(), service.embedder().model_id
    if repair:
        report = repair_index(store, app.config.index_root, model_id, service.index)
    else:
        report = diagnose(store, app.config.index_root, model_id)
    if as_json:
        echo_json(report.to_dict())
    else:
        for line in describe(report):
            click.echo(line)
    if not report.ok:
        sys.exit(1)


def _privacy(app: AppContext, service, needle: str, as_json: bool) -> None:
    from kb.app.privacy import finish_erasures, scan_home

    store = service.store()
    pending = store.pending_erasures()
    finished = finish_erasures(service)["finished"] if pending else []
    report = scan_home(app.config.home_path, needle=needle, redactor=service.redactor)
    result = {**report.to_dict(), "pending_erasures_found": pending, "erasures_finished": finished}
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"Scanned {report.files} files ({report.bytes / 2**20:.1f} MB) under {app.config.home_path}"
        )
        if pending:
            click.echo(
                f"Found {len(pending)} unfinished erasure(s) (the rows were gone, index files and "
                f"free pages not yet): finished now ({', '.join(map(str, finished))})"
            )
        if needle:
            for path, hits in report.needle_hits.items():
                click.echo(f"  {path}: {hits} occurrence(s) of the text")
            click.echo("The text was found." if report.needle_hits else "The text is in no file.")
        else:
            for path, kinds in report.findings.items():
                click.echo(f"  {path}: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
            click.echo("Unredacted data found." if report.findings else "Nothing unredacted found.")
    if report.needle_hits or report.findings:
        sys.exit(1)
