"""The `kb` command: knowledge-manager and operator tasks over the library.

Each command parses its input, calls the library, and prints. Command groups live in their
own modules and are registered here.
"""

from __future__ import annotations

import os
import secrets
import sys

import click

from kb.errors import KBError
from kb.models import IMPORT_FORMATS, PEOPLE, RANKING_MODES, ROLES
from scripts.articles import articles
from scripts.bench.cli import bench
from scripts.common import (
    AppContext,
    actor_option,
    cli_actor,
    cli_person,
    echo_json,
    home_option,
    pass_app,
    reports_errors,
    set_acting_as,
    terminal_progress,
)
from scripts.doctor_cli import doctor
from scripts.privacy_cli import audit, erase, incidents, redact
from scripts.report import report
from scripts.store_cli import store
from scripts.tune_cli import tune


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    default=None,
    metavar="PATH",
    help="Data home holding the database and index (default: $KB_HOME or ./kb_home).",
)
@click.option(
    "--database-url",
    default=None,
    metavar="URL",
    help="A PostgreSQL database shared by several nodes (default: $KB_DATABASE_URL; empty: SQLite "
    "in the data home).",
)
@click.option(
    "--as",
    "acting_as",
    default=None,
    metavar="NAME",
    help="Who makes the changes of this command, as the audit log records it (default: the OS user).",
)
@click.version_option(package_name="incident-kb", prog_name="kb")
@click.pass_context
def cli(
    ctx: click.Context, home: str | None, database_url: str | None, acting_as: str | None
) -> None:
    """Incident-resolution knowledge search: ranked prior resolutions for new incidents.

    Typical first run: kb init; kb import articles; kb import incidents FILE; kb index;
    kb serve.
    """
    ctx.obj = AppContext(home, database_url)
    if acting_as is not None:
        set_acting_as(ctx, None, acting_as)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@home_option
@pass_app
@reports_errors
def init(app: AppContext) -> None:
    """Create the data home: database (or, with a database URL, migrate it), index folder (safe to run again)."""
    from kb.home import prepare_home

    home = app.config.home_path
    existed = app.config.db_path.exists()
    prepare_home(app.config)
    store = app.service().store()
    if app.config.database_url:
        click.echo(
            f"Node home ready at {home}; database {store.where} (schema version {store.schema_version()})"
        )
        return
    click.echo(
        f"{'Data home already set up' if existed else 'Created data home'} at {home} "
        f"(schema version {store.schema_version()})"
    )


@cli.group(name="import")
def import_group() -> None:
    """Load incidents or articles into the store."""


def _columns_epilog() -> str:
    from kb.importers import columns_table

    lines = [
        "\b",
        "Columns read for each field (first found wins; --map overrides; compared without case):",
    ]
    for fmt in ("servicenow", "jira", "zendesk"):
        lines.append(f"  --format {fmt}:")
        lines += [f"    {name:<17} {columns}" for name, columns in columns_table(fmt)]
    lines.append(
        "  --format generic: the field names themselves (id, title, description, resolution, ...)."
    )
    lines += [
        "",
        "\b",
        "Zendesk JSON exports (one ticket a line, with its comments) and Jira REST JSON "
        "(issues with fields) are read too. See docs/import.md.",
    ]
    return "\n".join(lines)


@import_group.command(name="incidents", epilog=_columns_epilog())
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(IMPORT_FORMATS),
    default="generic",
    show_default=True,
    help="Column names of the file.",
)
@click.option(
    "--map",
    "mappings",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="Read FIELD from the file's COLUMN (repeatable), e.g. --map 'Ticket Nr=id'.",
)
@click.option(
    "--date-format",
    default="auto",
    show_default=True,
    metavar="ORDER",
    help="How numeric dates such as 03/04/2026 are read: auto (from the file's unambiguous dates; "
    "else slashes month first, dots and dashes day first), day-first, month-first, or a "
    "strptime pattern such as '%d.%m.%Y %H:%M'.",
)
@click.option(
    "--delimiter",
    default=None,
    metavar="CHAR",
    help="The CSV delimiter (default: sniffed from the header: comma, semicolon, tab or |).",
)
@home_option
@pass_app
@reports_errors
def import_incidents(
    app: AppContext,
    file: str,
    fmt: str,
    mappings: tuple[str, ...],
    date_format: str,
    delimiter: str | None,
) -> None:
    """Upsert incidents from FILE (.jsonl, .json or .csv), all or nothing.

    A broken record stops the import with the line or row that is wrong; the store is left
    as it was. Warnings say what would import without effect, such as resolved incidents
    without a resolution (they can never be suggested) or dates that could be read two ways.
    """
    from kb.importers import parse_map_option, read_incident_report

    app.require_home()
    if delimiter is not None:
        delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
        if len(delimiter) != 1:
            raise KBError("--delimiter must be one character (or 'tab')")
    store = app.service().store()
    report = read_incident_report(
        file,
        fmt=fmt,
        overrides=parse_map_option(list(mappings)),
        date_format=date_format,
        delimiter=delimiter,
        known_names={name: store.names_in_use(name) for name in ("product", "category")},
    )
    counts = store.upsert_incidents(report.incidents, source=f"{fmt}:{os.path.basename(file)}")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"Imported {len(report.incidents)} incidents from {file}: {counts.inserted} new, "
        f"{counts.updated} updated, {counts.unchanged} unchanged. Run `kb index` to make "
        "them searchable."
    )


@import_group.command(name="articles")
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option(
    "--by",
    "changed_by",
    default=None,
    help="Who made the change (default: --as, else the OS user).",
)
@actor_option
@home_option
@pass_app
@reports_errors
def import_articles(app: AppContext, folder: str | None, changed_by: str | None) -> None:
    """Load Markdown articles from FOLDER (default: articles/).

    Good files are imported in one transaction; each broken file is reported with its line
    and skipped. Each file is linted first: an article with a secret (a password, key or
    token) is never imported; a not_validated, validated or public one with other lint
    errors is refused (the store keeps the version it had); a draft is imported with its
    errors listed. The exit status is 1 if any file was broken or refused.
    """
    from kb.app.article_import import import_article_folder

    app.require_home()
    folder = folder or app.config.articles_dir
    who = changed_by or cli_person()
    done = import_article_folder(app.service(), folder, changed_by=who)
    for problem in done.broken:
        click.echo(f"error: {problem}", err=True)
    for path, reason in done.refused:
        click.echo(f"error: {path}: {reason}", err=True)
    for path, reason in done.warned:
        click.echo(f"warning: {path}: {reason}", err=True)
    skipped = len(done.broken) + len(done.refused)
    click.echo(
        f"Imported {done.imported} articles from {folder}: {done.inserted} new, "
        f"{done.updated} changed, {done.unchanged} unchanged"
        + (f"; {len(done.broken)} files skipped" if done.broken else "")
        + (
            f"; {len(done.refused)} refused for lint errors (see above; `kb articles lint`)"
            if done.refused
            else ""
        )
    )
    if skipped:
        sys.exit(1)


@cli.command()
@click.option("--rebuild", is_flag=True, help="Chunk every document again and build a new index.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--verbose", is_flag=True, help="List every ranking candidate the replay measured.")
@click.option(
    "--cluster",
    metavar="ADDRESS",
    default=None,
    help="Embed the texts the cache lacks on a Ray cluster: HOST:PORT of its head, ray://HOST:PORT, "
    "auto, or local[:N] to start one on this machine with N worker processes. Needs the "
    "optional extra: pip install 'kb[cluster]'.",
)
@click.option(
    "--cluster-workers",
    type=click.IntRange(min=1),
    default=None,
    help="Embedding workers on the cluster (default: one per CPU it offers; N with local:N).",
)
@home_option
@pass_app
@reports_errors
def index(
    app: AppContext,
    rebuild: bool,
    as_json: bool,
    verbose: bool,
    cluster: str | None,
    cluster_workers: int | None,
) -> None:
    """Embed what is new or changed and publish a new index version.

    Unchanged text is never embedded again (a content-hash cache); when the published index
    already holds exactly what the store holds, nothing is published. Also refits the ranking
    profile on the store's own incidents. With --cluster, the embedding of a large import
    is spread over a Ray cluster's workers; everything else runs here as usual.
    """
    app.require_home()
    if cluster_workers and not cluster:
        raise click.UsageError("--cluster-workers needs --cluster")

    def say(message: str) -> None:
        click.echo(message, err=True)

    report = app.service().index(
        rebuild=rebuild,
        progress=terminal_progress(),
        cluster=cluster,
        cluster_workers=cluster_workers,
        say=say,
    )
    finish_pending_erasures(app.service(), say)
    if as_json:
        echo_json(report.to_dict())
        return
    if report.unchanged:
        click.echo(
            f"Index {report.version} is up to date with the store ({report.vectors} vectors): nothing to "
            "embed, nothing published (kb index --rebuild builds it again)"
        )
        return
    click.echo(
        f"Indexed {report.docs_indexed} documents ({report.chunks_added} chunks; "
        f"{report.texts_embedded} texts embedded, {report.texts_cached} from cache), "
        f"removed {report.docs_removed}; index {report.version} holds {report.vectors} vectors "
        f"({report.seconds:.1f} s)"
    )
    for note in report.notes:
        click.echo(f"note: {note}")
    echo_ranking(report.ranking, verbose=verbose)


def finish_pending_erasures(service, say) -> None:
    """Erasures that arrived while this index ran waited for its lock: finish them now."""
    if not service.store().pending_erasures():
        return
    from kb.app.privacy import finish_erasures

    finished = finish_erasures(service)["finished"]
    say(f"finished {len(finished)} erasure(s) that waited for this index")


def echo_ranking(ranking: dict, *, verbose: bool) -> None:
    """Which ranking the store chose, and what its replay measured for each candidate."""
    if not ranking:
        return
    if ranking["source"] != "fitted":
        click.echo(f"Ranking: defaults ({ranking.get('note') or 'no replay evidence'})")
    else:
        click.echo(
            f"Ranking fitted on {ranking['replay_queries']} of the store's incidents, each asked "
            f"without itself and its near-copies ({ranking['near_copies_left_out']} left out): "
            f"accuracy@1 {ranking['replay_accuracy_at_1']:.3f}, MRR {ranking['replay_mrr']:.3f}"
        )
        chosen = ranking["chosen"]
        if len(set(chosen.values())) == 1:
            click.echo(f"  every query length: {next(iter(chosen.values()))}")
        else:
            for bucket, name in chosen.items():
                click.echo(f"  {bucket} queries: {name}")
        candidates = ranking["candidates"]
        shown = candidates if verbose else _reference_rows(candidates)
        click.echo(f"  {'candidate (replay)':<72} {'acc@1':>6} {'MRR':>6}")
        for row in shown:
            click.echo(f"  {row['ranking']:<72} {row['accuracy_at_1']:>6.3f} {row['mrr']:>6.3f}")
        if not verbose and len(shown) < len(candidates):
            click.echo(f"  ({len(candidates) - len(shown)} more candidates: kb index --verbose)")
    no_match = ranking["no_good_match"]
    line = f"No good match below similarity {no_match['similarity_below']:.3f}"
    if no_match.get("note"):
        line += f" ({no_match['note']})"
    elif "flagged_in_scope" in no_match:
        evidence = (
            "answerable replayed incidents"
            if no_match.get("in_scope_evidence") == "replayed incidents"
            else "incidents' nearest other incidents"
        )
        line += (
            f" (flags {no_match['flagged_in_scope']:.1%} of {evidence} and "
            f"{no_match['flagged_background']:.1%} of {no_match['background']} off-topic requests)"
        )
    trust = ranking.get("trust") or {}
    if trust.get("models"):
        line += " (used where the fitted verdict below is not)"
    click.echo(line)
    if trust.get("models"):
        stream = trust["stream"]
        click.echo(
            f"Confidence and no good match fitted on a mixed stream: {stream.get('answerable', 0)} answerable, "
            f"{stream.get('near', 0)} with their resolution held out, {stream.get('far', 0)} background requests"
        )
        for language, model in trust["models"].items():
            verdict, high = model["no_good_match"], model["high"]
            high_text = (
                f"High from {high['cut']:.2f} (right {high['right_share']:.1%} of {high['results']})"
                if high.get("cut")
                else "no High (never right nine times in ten)"
            )
            click.echo(
                f"  {'store-wide' if language == '*' else language}: flags {verdict['flagged_answerable']:.1%} "
                f"of answerable, {verdict['flagged_off_topic']:.1%} of off-topic (balanced accuracy "
                f"{verdict['balanced_accuracy']:.3f}); {high_text}; ECE {model['ece']:.3f}"
            )
    elif trust.get("note"):
        click.echo(f"Confidence: {trust['note']}")
    echo_families(ranking.get("families") or {}, verbose=verbose)
    for field, figures in (ranking.get("triage") or {}).items():
        if not isinstance(figures, dict):
            continue
        if "accuracy_at_1" not in figures:
            click.echo(f"Triage {field.replace('_', ' ')}: {figures.get('note', 'not fitted')}")
            continue
        model = (
            f", model {figures['model_accuracy']:.3f}"
            if figures.get("model_accuracy") is not None
            else ""
        )
        click.echo(
            f"Triage {field.replace('_', ' ')}: replay accuracy {figures['accuracy_at_1']:.3f} on "
            f"{figures['replayed']} incidents (similar incidents' vote {figures['vote_accuracy']:.3f}{model}; "
            f"not sure {figures['not_sure_share']:.1%}, accurate when sure "
            f"{figures['accuracy_when_sure'] or 0:.3f}; majority {figures['majority_baseline']:.3f}, "
            f"nearest incident {figures['nearest_neighbour_baseline']:.3f})"
        )


FAMILIES_SHOWN = 5


def echo_families(families: dict, *, verbose: bool) -> None:
    """What kb index grouped into resolution families (search.families)."""
    if not families.get("notes"):
        return
    if families.get("note"):
        click.echo(f"Resolution families: none ({families['note']})")
        return
    if not families.get("families"):
        click.echo(f"Resolution families: none among {families['notes']} distinct note(s)")
        return
    click.echo(
        f"Resolution families: {families['families']} families of {families['incidents_grouped']} "
        f"incidents, from {families['notes']} distinct notes of {families['incidents']} incidents "
        f"(largest {families['largest']})"
    )
    rows = families.get("examples") or []
    for row in rows if verbose else rows[:FAMILIES_SHOWN]:
        steps = f"; {len(row['steps'])} agreed steps" if row.get("steps") else ""
        click.echo(
            f"  {row['family']}: {row['size']} incidents in {row['notes']} notes{steps}; "
            f"e.g. {row['representative'][:90]!r}"
        )
    if not verbose and len(rows) > FAMILIES_SHOWN:
        click.echo(f"  ({len(rows) - FAMILIES_SHOWN} more families: kb index --verbose)")


def _reference_rows(candidates: list[dict]) -> list[dict]:
    """The best candidates and the best of each reference ranking."""
    rows = candidates[:3]
    for prefix in ("embeddings only", "reciprocal rank fusion", "BM25 only"):
        row = next((c for c in candidates if c["ranking"].startswith(prefix)), None)
        if row is not None and row not in rows:
            rows.append(row)
    return rows


@cli.command()
@click.argument("text")
@click.option(
    "--k",
    default=None,
    type=click.IntRange(min=1),
    help="How many results (default: KB_DEFAULT_K, 5; at most KB_MAX_K, 50).",
)
@click.option("--title", default="", help="The incident's title, if TEXT is its description.")
@click.option("--product", default="", help="Only resolutions for this product.")
@click.option("--category", default="", help="Only resolutions in this category.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON shape.")
@click.option("--record", is_flag=True, help="Record the suggestion (it can then take feedback).")
@home_option
@pass_app
@reports_errors
def search(
    app: AppContext,
    text: str,
    k: int,
    title: str,
    product: str,
    category: str,
    as_json: bool,
    record: bool,
) -> None:
    """Ranked prior resolutions for one incident text."""
    from kb.app.requests import Filters, SuggestRequest
    from web.serialize import suggestion_json

    app.require_home()
    service = app.service()
    config = service.config
    k = config.default_k if k is None else k
    if k > config.max_k:
        raise click.BadParameter(f"at most {config.max_k} (KB_MAX_K)", param_hint="--k")
    request = SuggestRequest(
        title=title, description=text, k=k, filters=Filters(product=product, category=category)
    )
    suggestion = service.suggest(request, caller="cli", record=record)
    if as_json:
        echo_json(suggestion_json(suggestion, base_url=app.config.public_url))
        return
    if suggestion.no_good_match:
        click.echo("No good match: nothing in the knowledge base fits this incident well.")
    for r in suggestion.results:
        evidence = f", resolved {r.similar_count} similar incidents" if r.similar_count > 1 else ""
        click.echo(f"{r.rank}. [{r.kind}] {r.id}: {r.title}  (confidence {r.score:.2f}{evidence})")
        click.echo(f"   {_short(r.resolution)}")


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default: $KB_HOST or 127.0.0.1).")
@click.option(
    "--port", default=None, type=click.IntRange(1, 65535), help="Port (default: $KB_PORT or 5000)."
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Worker processes (default: $KB_WORKERS or one per core).",
)
@home_option
@pass_app
@reports_errors
def serve(app: AppContext, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the web app and API with a production WSGI server (gunicorn)."""
    from web.server import check_can_listen, run_server

    app.require_home()
    config = app.config.with_overrides(host=host, port=port, workers=workers)
    config.check_oidc()
    check_can_listen(config.host, config.port)
    if config.database_url:
        app.service().prepare_node(lambda line: click.echo(f"kb serve: {line}", err=True))
    app.close()  # no database connection may cross the workers' fork
    run_server(config)


@cli.group()
def tokens() -> None:
    """API tokens for ticket systems and scripts."""


@tokens.command(name="create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the token may do.")
@click.option(
    "--if-missing",
    is_flag=True,
    help="Print nothing and change nothing when NAME already has an active token (for scripts run twice).",
)
@actor_option
@home_option
@pass_app
@reports_errors
def tokens_create(app: AppContext, name: str, role: str, if_missing: bool) -> None:
    """Print a new API token once; only its hash is stored."""
    app.require_home()
    store = app.service().store()
    if if_missing and any(t["name"] == name and t["active"] for t in store.list_tokens()):
        click.echo(
            f"{name} already has an active token; none made (kb tokens revoke {name} first for a new one)",
            err=True,
        )
        return
    click.echo(store.create_token(name, role, actor=cli_actor()))


@tokens.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Revoked tokens too.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@home_option
@pass_app
@reports_errors
def tokens_list(app: AppContext, show_all: bool, as_json: bool) -> None:
    """API tokens by name: role, when made, and whether revoked (never the token itself)."""
    app.require_home()
    rows = [t for t in app.service().store().list_tokens() if show_all or t["active"]]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No tokens" + ("" if show_all else " (kb tokens list --all shows revoked ones)"))
        return
    click.echo(f"{'name':<24} {'role':<18} {'created':<20} {'revoked':<20}")
    for t in rows:
        click.echo(
            f"{t['name']:<24} {t['role']:<18} {t['created_at'][:19]:<20} {(t['revoked_at'] or '-')[:19]:<20}"
        )


@tokens.command(name="revoke")
@click.argument("name")
@actor_option
@home_option
@pass_app
@reports_errors
def tokens_revoke(app: AppContext, name: str) -> None:
    """Revoke every token issued to NAME (an error when NAME has no active token)."""
    app.require_home()
    count = app.service().store().revoke_tokens(name, actor=cli_actor())
    if not count:
        raise KBError(f"{name!r} has no active token (kb tokens list shows them)")
    click.echo(f"Revoked {count} token(s) of {name}")


@cli.group()
def users() -> None:
    """People who sign in to the web pages."""


@users.command(name="create")
@click.argument("name")
@click.option(
    "--role", required=True, type=click.Choice(PEOPLE), help="What the person may do on the pages."
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--generate-password", is_flag=True, help="Make up a strong password and print it once."
)
@click.option(
    "--update", is_flag=True, help="If NAME exists, set its role and password instead of failing."
)
@click.option(
    "--if-missing",
    is_flag=True,
    help="If NAME exists, leave it as it is (role and password unchanged) and say so.",
)
@actor_option
@home_option
@pass_app
@reports_errors
def users_create(
    app: AppContext,
    name: str,
    role: str,
    password_stdin: bool,
    generate_password: bool,
    update: bool,
    if_missing: bool,
) -> None:
    """Create a local account (the password is stored as a PBKDF2 hash)."""
    app.require_home()
    if password_stdin and generate_password:
        raise KBError("choose one of --password-stdin and --generate-password")
    if update and if_missing:
        raise KBError("choose one of --update and --if-missing")
    if if_missing and app.service().store().has_user(name):
        click.echo(
            f"User {name} already exists; left as it is, password unchanged (kb users create {name} "
            f"--role {role} --generate-password --update sets a new one)"
        )
        return
    if generate_password:
        password = secrets.token_urlsafe(12)
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = app.service().store()
    existed = store.has_user(name)
    if existed and update:
        store.update_user(name, role=role, password=password, actor=cli_actor())
    else:
        store.create_user(name, role, password, actor=cli_actor())
    click.echo(
        f"{'Updated' if existed else 'Created'} user {name} ({role})"
        + (f" with password {password}" if generate_password else "")
    )


@users.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@home_option
@pass_app
@reports_errors
def users_list(app: AppContext, as_json: bool) -> None:
    """People who can sign in: name, role, when made, and whether disabled (never passwords)."""
    app.require_home()
    rows = app.service().store().list_users()
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No users (kb users create NAME --role ROLE)")
        return
    click.echo(f"{'name':<24} {'role':<18} {'created':<20} state")
    for u in rows:
        click.echo(
            f"{u['name']:<24} {u['role']:<18} {u['created_at'][:19]:<20} "
            f"{'disabled' if u['disabled'] else 'active'}"
        )


@users.command(name="disable")
@click.argument("name")
@actor_option
@home_option
@pass_app
@reports_errors
def users_disable(app: AppContext, name: str) -> None:
    """Stop NAME signing in and end all of their sessions at once, on every worker
    (`kb users create NAME --update` sets a new password and enables them again)."""
    app.require_home()
    app.service().store().disable_user(name, actor=cli_actor())
    click.echo(f"Disabled user {name}; their sessions have ended")


@cli.command(name="eval")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option(
    "--ranking",
    type=click.Choice([*RANKING_MODES, "all"]),
    default="shipped",
    show_default=True,
    help="The shipped ranking, a reference ranking, or all of them side by side.",
)
@click.option(
    "--route-from-relevant",
    type=click.Choice(["assignment_group", "category", "product", "priority"]),
    default=None,
    help="Measure triage's prediction of this field against each query's first "
    "relevant id (for a store whose resolutions are its groups).",
)
@home_option
@pass_app
@reports_errors
def eval_command(
    app: AppContext, file: str, as_json: bool, ranking: str, route_from_relevant: str | None
) -> None:
    """Quality metrics for labelled queries: accuracy@1, MRR, recall@5, flagged rate.

    FILE is JSONL: {"text": "...", "relevant": ["<resolution or record id>", ...]}; an empty
    "relevant" list marks an out-of-scope query that should be flagged as no good match.
    A query may also carry "assignment_group", "category", "product" and "priority" (triage's
    routing of each is measured) and "customer_tier" (sent with it).
    """
    from kb.app.evaluation import evaluate, read_labelled_queries

    app.require_home()
    queries = read_labelled_queries(file)
    service = app.service()
    modes = list(RANKING_MODES) if ranking == "all" else [ranking]
    reports = []
    for mode in modes:
        progress = terminal_progress()
        progress.start(mode, len(queries))
        reports.append(
            evaluate(
                service.suggester(),
                service.store(),
                queries,
                ranking=mode,
                progress=progress.advance,
                route_from_relevant=route_from_relevant or "",
            )
        )
        progress.finish()
    if as_json:
        echo_json(reports[0] if len(reports) == 1 else reports)
        return
    click.echo(
        f"{len(queries)} queries ({reports[0]['in_scope']} in scope, "
        f"{reports[0]['out_of_scope']} out of scope)"
    )
    click.echo(
        f"{'ranking':<9} {'acc@1':>6} {'MRR':>6} {'R@5':>6} {'flagged':>8} {'OOS flagged':>12} {'p50 ms':>7}"
    )
    for r in reports:
        oos = (
            "-"
            if r["flagged_out_of_scope_rate"] is None
            else f"{r['flagged_out_of_scope_rate']:.3f}"
        )
        click.echo(
            f"{r['ranking']:<9} {r['accuracy_at_1']:>6.3f} {r['mrr']:>6.3f} {r['recall_at_5']:>6.3f} "
            f"{r['flagged_in_scope_rate']:>8.3f} {oos:>12} {r['latency_ms_p50']:>7.1f}"
        )
    table = reports[0].get("reliability")
    if table:
        click.echo("Confidence of the top result (shipped ranking, in-scope queries):")
        click.echo(f"{'band':<9} {'results':>8} {'mean conf':>10} {'right':>7}")
        for row in table:
            click.echo(
                f"{row['band']:<9} {row['results']:>8} {row['mean_confidence']:>10.3f} {row['accuracy']:>7.3f}"
            )
    trust = reports[0].get("trust")
    if trust and trust["queries"]:
        click.echo(
            f"Shown confidence of the top result over every query (out of scope counts as wrong): "
            f"ECE {trust['ece']:.3f}; balanced accuracy of no good match "
            f"{'-' if reports[0]['balanced_accuracy'] is None else format(reports[0]['balanced_accuracy'], '.3f')}"
        )
        click.echo(f"{'band':<9} {'results':>8} {'mean conf':>10} {'right':>7}")
        for row in trust["reliability"]:
            click.echo(
                f"{row['band']:<9} {row['results']:>8} {row['mean_confidence']:>10.3f} {row['accuracy']:>7.3f}"
            )
        for band, row in trust["bands"].items():
            right = "-" if row["right_share"] is None else f"{row['right_share']:.3f}"
            click.echo(f"  {band:<7} {row['results']:>6} results, right {right}")
    for name, routing in (reports[0].get("routing_fields") or {}).items():
        sure = (
            "-" if routing["accuracy_when_sure"] is None else f"{routing['accuracy_when_sure']:.3f}"
        )
        click.echo(
            f"Routing {name.replace('_', ' ')} ({routing['queries']} queries): "
            f"acc@1 {routing['accuracy_at_1']:.3f}, "
            f"not sure {routing['not_sure_share']:.3f}, acc when sure {sure}, "
            f"majority baseline {routing['majority_baseline']:.3f}, nearest incident's value "
            f"{routing['nearest_neighbour_baseline']:.3f}"
        )
        for row in routing["reliability"]:
            click.echo(
                f"  probability {row['band']:<9} {row['results']:>6} mean {row['mean_confidence']:.3f} "
                f"right {row['accuracy']:.3f}"
            )


cli.add_command(articles)
cli.add_command(report)
cli.add_command(doctor)
cli.add_command(tune)
cli.add_command(bench)
cli.add_command(redact)
cli.add_command(incidents)
cli.add_command(erase)
cli.add_command(audit)
cli.add_command(store)


def main() -> None:
    try:
        cli(prog_name="kb")
    except KBError as exc:  # errors raised outside a command body (e.g. bad KB_* settings)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
