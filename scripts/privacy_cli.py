"""`kb redact`, `kb incidents delete`, `kb erase` and `kb audit`: personal data in and out."""

from __future__ import annotations

import sys

import click

from kb.errors import KBError
from kb.models import IMPORT_FORMATS
from scripts.common import (
    AppContext,
    actor_option,
    cli_actor,
    echo_json,
    home_option,
    pass_app,
    reports_errors,
)


@click.command()
@click.option(
    "--check",
    "check_file",
    type=click.Path(dir_okay=False, exists=True),
    metavar="FILE",
    help="Show what would be replaced in an export FILE (.jsonl, .json, .csv); changes nothing.",
)
@click.option(
    "--apply",
    "apply",
    is_flag=True,
    help="Rewrite the texts already stored, re-embed what changed and publish a new index.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(IMPORT_FORMATS),
    default="generic",
    show_default=True,
    help="Column names of FILE (with --check).",
)
@click.option(
    "--map", "mappings", multiple=True, metavar="COLUMN=FIELD", help="As for `kb import incidents`."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@home_option
@pass_app
@reports_errors
def redact(
    app: AppContext,
    check_file: str | None,
    apply: bool,
    fmt: str,
    mappings: tuple[str, ...],
    as_json: bool,
) -> None:
    """Secrets and personal data in incident text (KB_REDACT chooses the kinds).

    Every import, posted incident and recorded suggest request is redacted on the way in;
    --check shows what an export holds before it is imported, and --apply redacts a data
    home that was filled before (older index versions, profiles and freed pages go too).
    Findings are shown masked, never in full.
    """
    from kb.app import privacy
    from kb.importers import parse_map_option

    if bool(check_file) == apply:
        raise KBError("give one of --check FILE or --apply")
    redactor = app.service().redactor
    if check_file:
        report = privacy.check_export(
            check_file, fmt=fmt, overrides=parse_map_option(list(mappings)), redactor=redactor
        )
        if as_json:
            echo_json(report)
            return
        kinds = ", ".join(f"{n} {k}" for k, n in report["by_kind"].items()) or "nothing"
        click.echo(
            f"{report['records']} records in {check_file}; {report['records_with_findings']} hold "
            f"something to redact ({kinds}); redacted kinds: {', '.join(report['kinds_redacted']) or 'none'}"
        )
        for finding in report["findings"][:200]:
            click.echo(
                f"  {finding['id']}  {finding['field']}  {finding['kind']} at {finding['at']} "
                f"({finding['looks_like']})"
            )
        if len(report["findings"]) > 200:
            click.echo(f"  ... and {len(report['findings']) - 200} more (--json lists all)")
        return
    app.require_home()
    report = privacy.redact_home(app.service(), progress=lambda line: click.echo(line, err=True))
    if as_json:
        echo_json(report)
    else:
        click.echo(
            f"Redacted {report['incidents_changed']} incident(s) and {report['suggestions_changed']} "
            f"recorded quer(y/ies); published index {report['index'].get('version', '')}; removed "
            f"{len(report['index_versions_removed'])} older index version(s), "
            f"{report['profiles_removed']} older profile(s), {report['vectors_removed']} unused vector(s)"
        )


@click.group()
def incidents() -> None:
    """Incidents in the store."""


@incidents.command(name="delete")
@click.argument("ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@actor_option
@home_option
@pass_app
@reports_errors
def incidents_delete(app: AppContext, ids: tuple[str, ...], as_json: bool) -> None:
    """Erase incidents everywhere: rows, chunks, full-text entries, cached vectors, every
    index version on disk, their text in recorded suggestions, drafts started from them,
    and the database's free pages and WAL. Logged in `kb audit` (ids, never text)."""
    from kb.app.privacy import erase_incidents

    app.require_home()
    report = erase_incidents(app.service(), list(ids), actor=cli_actor(), wait=True)
    _echo_erasure(report, as_json)


def _echo_erasure(report: dict, as_json: bool) -> None:
    if as_json:
        echo_json(report)
        return
    click.echo(
        f"Erased {len(report['erased'])} incident(s): {', '.join(report['erased'])}"
        + (f"; {len(report['drafts'])} draft(s)" if report["drafts"] else "")
        + (
            f"; {report['suggestions_blanked']} suggestion text(s)"
            if report["suggestions_blanked"]
            else ""
        )
    )
    if report["missing"]:
        click.echo(f"Not found: {', '.join(report['missing'])}", err=True)


@click.command()
@click.option("--email", required=True, metavar="ADDRESS", help="The person's e-mail address.")
@click.option("--yes", is_flag=True, help="Erase what was found (without it, only list it).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@actor_option
@home_option
@pass_app
@reports_errors
def erase(app: AppContext, email: str, yes: bool, as_json: bool) -> None:
    """Find everything stored that holds a person's e-mail address, in any letter case or
    width (full-width characters included), and with --yes erase it: incidents that mention
    it in any field (as `kb incidents delete` does), the text of recorded suggest requests,
    the agent's name on feedback, and drafts. (With redaction on, new text holds no
    addresses; this finds what was stored before.)"""
    from kb.app.privacy import erase_person

    app.require_home()
    if "@" not in email or len(email) > 320:
        raise KBError(f"{email!r} is not an e-mail address")
    found = app.service().store().records_mentioning(email)
    if not yes or not any(found.values()):
        if as_json:
            echo_json(
                {
                    "email_found_in": found["incidents"],
                    "suggestions": found["suggestions"],
                    "feedback": [list(row) for row in found["feedback"]],
                    "drafts": found["drafts"],
                    "erased": [],
                }
            )
        else:
            incidents = found["incidents"]
            click.echo(
                f"{len(incidents)} incident(s) mention it"
                + (f": {', '.join(incidents)}" if incidents else "")
                + f"; {len(found['suggestions'])} recorded suggestion(s), {len(found['feedback'])} "
                f"feedback row(s), {len(found['drafts'])} draft(s)"
                + ("; run again with --yes to erase them" if any(found.values()) else "")
            )
        return
    report = erase_person(app.service(), email, actor=cli_actor(), wait=True)
    if as_json:
        report["found"]["feedback"] = [list(row) for row in report["found"]["feedback"]]
        echo_json(report)
        return
    click.echo(
        f"Erased {len(report['erased'])} incident(s)"
        + (f": {', '.join(report['erased'])}" if report["erased"] else "")
        + f"; {len(report['drafts'])} draft(s), {report['suggestions_blanked']} suggestion text(s), "
        f"{report['feedback_agents_erased']} feedback agent name(s)"
    )


@click.command()
@click.option(
    "--since", default="", metavar="DATE", help="Entries from this date or time on (ISO 8601)."
)
@click.option(
    "--action", default="", help="Only this action (erase, token create, role change, read, ...)."
)
@click.option(
    "--limit",
    default=200,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Most entries to list, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.option(
    "--verify",
    is_flag=True,
    help="Check the chain of entry hashes instead: exit 1 naming each entry removed, edited, "
    "slipped in or back-dated; print the head hash to keep elsewhere.",
)
@click.option(
    "--expect-head",
    default="",
    metavar="HASH",
    help="With --verify: a head hash printed earlier; fail unless that entry is still in the chain.",
)
@home_option
@pass_app
@reports_errors
def audit(
    app: AppContext,
    since: str,
    action: str,
    limit: int,
    as_json: bool,
    verify: bool,
    expect_head: str,
) -> None:
    """The append-only audit log, newest first: reads of incidents and articles by knowledge
    managers and admins, token creation, role and password changes, erasures.

    Every entry carries the hash of the one before it and its own; --verify walks the chain."""
    app.require_home()
    if expect_head and not verify:
        raise click.UsageError("--expect-head needs --verify")
    if verify:
        _verify_audit(app, expect_head, as_json)
        return
    entries = app.service().store().audit_entries(since=since, action=action, limit=limit)
    if as_json:
        echo_json(entries)
        return
    for entry in entries:
        click.echo(
            f"{entry['at']}  {entry['actor']:<24} {entry['action']:<16} {entry['target']}"
            + (f"  ({entry['detail']})" if entry["detail"] else "")
        )
    if not entries:
        click.echo("No entries.", err=True)
    sys.stdout.flush()


def _verify_audit(app: AppContext, expect_head: str, as_json: bool) -> None:
    report = app.service().store().verify_audit_chain(expect_head=expect_head.strip())
    if as_json:
        echo_json(report)
    else:
        for problem in report["problems"]:
            where = f"entry {problem['id']}" if problem["id"] is not None else "the log"
            click.echo(f"{where}: {problem['problem']}", err=True)
        head = report["head"]
        click.echo(
            f"{report['entries']} entries, {len(report['problems'])} problem(s)"
            + (
                f"; {report['before_chaining']} written before chaining, not verifiable"
                if report["before_chaining"]
                else ""
            )
        )
        click.echo(f"head: entry {head['id']} {head['hash'] or '(none yet)'}")
    if report["problems"]:
        raise SystemExit(1)
