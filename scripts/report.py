"""`kb report`: KCS metrics, knowledge gaps and stale articles, as text, JSON or HTML."""

from __future__ import annotations

from pathlib import Path

import click

from scripts.common import AppContext, echo_json, home_option, pass_app, reports_errors


@click.command(name="report")
@click.option(
    "--days",
    default=90,
    show_default=True,
    type=click.IntRange(1, 3650),
    help="The window the metrics cover.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@click.option(
    "--html",
    "html_file",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also write one self-contained HTML page with charts.",
)
@home_option
@pass_app
@reports_errors
def report(app: AppContext, days: int, as_json: bool, html_file: str | None) -> None:
    """Usage, reuse and gaps: link rate, new vs known, acceptance by rank, none-helped
    rate, the articles that carry the load (Pareto), knowledge gaps clustered by topic,
    and stale articles.

    The HTML page needs no network and runs no script: charts are inline SVG.
    """
    from kb.app.report import build_report, render_text
    from kb.app.report_html import render_html
    from kb.authoring import write_file_atomically

    app.require_home()
    data = build_report(app.service(), days=days)
    if html_file:
        path = Path(html_file)
        if not path.parent.is_dir():
            raise click.ClickException(f"not a folder: {path.parent}")
        write_file_atomically(path, render_html(data))
    if as_json:
        echo_json(data)
    else:
        click.echo(render_text(data))
    if html_file:
        click.echo(f"Wrote {html_file}", err=as_json)
