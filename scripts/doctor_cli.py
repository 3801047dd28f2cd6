"""`kb doctor`: check that the index agrees with the store, and repair what can be repaired."""

from __future__ import annotations

import sys

import click

from scripts.common import AppContext, echo_json, home_option, pass_app, reports_errors


@click.command()
@click.option("--repair", is_flag=True,
              help="Fix what can be fixed: remove leftovers of an interrupted indexer, drop "
                   "untracked chunks, run the indexer (or rebuild), then check again.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@home_option
@pass_app
@reports_errors
def doctor(app: AppContext, repair: bool, as_json: bool) -> None:
    """Check that the published index and the store agree.

    Compares chunk ids, counts and the model id, and looks for documents waiting to be
    indexed, stale documents, chunks without vectors, leftover temporary folders, a CURRENT
    pointer to a missing version and a damaged database. Exits 1 while problems remain.
    """
    from kb.app.doctor import describe, diagnose
    from kb.app.doctor import repair as repair_index

    app.require_home()
    service = app.service()
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
