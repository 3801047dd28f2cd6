"""`kb tune`: adapt the embedding model to the store's own incidents."""

from __future__ import annotations

import sys
import time

import click

from scripts.common import AppContext, echo_json, home_option, pass_app, reports_errors


class _TrainingBar:
    """Steps, loss-free: a click bar with ETA on a terminal, a line a minute otherwise."""

    def __init__(self):
        self.bar = None
        self.last = 0.0

    def __call__(self, label: str, step: int, total: int) -> None:
        if sys.stderr.isatty():
            if self.bar is None:
                self.bar = click.progressbar(
                    length=total, label=f"{label:<10}", file=sys.stderr, show_eta=True
                )
                self.bar.__enter__()
            self.bar.update(step - self.bar.pos)
            if step >= total:
                self.close()
        elif time.monotonic() - self.last > 60 or step == total:
            self.last = time.monotonic()
            click.echo(f"{label}: step {step}/{total}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.command()
@click.option("--rollback", is_flag=True, help="Go back to the model used before the current one.")
@click.option(
    "--epochs",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 20),
    help="Passes over the training incidents.",
)
@click.option(
    "--max-minutes",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 600),
    help="Stop training after this long (the model trained so far is still evaluated).",
)
@click.option("--dry-run", is_flag=True, help="Train and compare, but never switch.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@home_option
@pass_app
@reports_errors
def tune(
    app: AppContext, rollback: bool, epochs: float, max_minutes: float, dry_run: bool, as_json: bool
) -> None:
    """Fine-tune the embedding model on the store's resolved incidents.

    A tenth of the incidents is held out; the tuned model replaces the current one only if
    it ranks them better. It is saved under <home>/models/, every chunk is embedded with it,
    and a new index is published; until then the current model keeps serving. Stopping it
    (Ctrl-C) changes nothing that serves.
    """
    from kb.app.tuning import FineTuneSettings
    from kb.app.tuning import rollback as do_rollback
    from kb.app.tuning import tune as do_tune

    app.require_home()
    service = app.service()
    if rollback:
        result = do_rollback(service)
        if as_json:
            echo_json(result)
        else:
            click.echo(
                f"Rolled back to {result['model_path']}; index {result['index_version']} is serving"
            )
        return
    settings = FineTuneSettings(
        epochs=epochs, max_seconds=max_minutes * 60, threads=app.config.cpu_threads()
    )
    bar = _TrainingBar()
    try:
        report = do_tune(service, settings=settings, progress=bar, dry_run=dry_run)
    finally:
        bar.close()
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(
        f"Held-out incidents: {report.held_out}; accuracy@1 {report.current['accuracy_at_1']:.3f} -> "
        f"{report.candidate.get('accuracy_at_1', 0):.3f}, MRR {report.current['mrr']:.3f} -> "
        f"{report.candidate.get('mrr', 0):.3f} ({report.steps} steps, {report.train_seconds:.0f} s training, "
        f"{report.total_seconds:.0f} s in all)"
    )
    click.echo(
        report.reason
        + (
            f" (model {report.model_version}, index {report.index_version})"
            if report.switched
            else ""
        )
    )
