"""`kb articles ...`: knowledge-manager tasks on the Markdown articles."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from scripts.common import AppContext, cli_person, echo_json, home_option, pass_app, reports_errors


def _folder(app: AppContext, folder: str | None) -> Path:
    return Path(folder or app.config.articles_dir)


def _who(changed_by: str | None) -> str:
    return changed_by or cli_person()


dir_option = click.option(
    "--dir",
    "folder",
    default=None,
    type=click.Path(file_okay=False),
    help="Articles folder (default: $KB_ARTICLES_DIR or articles/).",
)


@click.group()
def articles() -> None:
    """Write, check and curate the Markdown articles (KCS)."""


@articles.command(name="new")
@click.argument("title")
@click.option("--id", "article_id", default=None, help="Article id (default: made from TITLE).")
@click.option("--product", default="", help="Product the article is about.")
@click.option("--category", default="", help="Category, e.g. connectivity.")
@click.option("--owner", default="", help="Team or person who keeps it true.")
@dir_option
@pass_app
@reports_errors
def articles_new(
    app: AppContext,
    title: str,
    article_id: str | None,
    product: str,
    category: str,
    owner: str,
    folder: str | None,
) -> None:
    """Create a draft article file from the house template and print its path.

    Front matter: status draft, audience internal, review_by in 180 days, updated
    today. Body: the sections Symptoms, Cause, Resolution, Applies to. Never overwrites.
    """
    from kb.authoring import scaffold_article

    path = scaffold_article(
        _folder(app, folder),
        title,
        article_id=article_id,
        product=product,
        category=category,
        owner=owner,
    )
    click.echo(str(path))


@articles.command(name="lint")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@pass_app
@reports_errors
def articles_lint(app: AppContext, paths: tuple[str, ...], as_json: bool, strict: bool) -> None:
    """Check article files (default: the articles folder) before they are published.

    Errors: front matter schema, duplicate ids, links to missing article files, raw
    HTML, protocol-relative links or images (//host/...), empty sections (warnings on
    drafts), public articles that are not validated.
    Warnings: review date passed or missing, missing house sections, unknown fields,
    links to archived articles. Exit status 0 when clean, 1 when there are errors (with
    --strict, warnings too).
    """
    from kb.lint import lint_paths

    report = lint_paths(list(paths) or [app.config.articles_dir])
    if as_json:
        echo_json({**report.to_dict(), "failed": report.failed(strict=strict)})
    else:
        for problem in report.problems:
            click.echo(str(problem))
        click.echo(f"{report.files} files: {report.errors} errors, {report.warnings} warnings")
    if report.failed(strict=strict):
        sys.exit(1)


@articles.command(name="dupes")
@click.option(
    "--threshold",
    type=click.FloatRange(-1.0, 1.0),
    default=None,
    help="Report pairs at least this alike (default: chosen from the data, as above).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the pairs as JSON.")
@home_option
@pass_app
@reports_errors
def articles_dupes(app: AppContext, threshold: float | None, as_json: bool) -> None:
    """Near-duplicate article pairs, with the sections that overlap, to merge.

    Uses the article vectors of the current index. Similarity: each section of one
    article is matched to the closest section of the other; the mean of those best
    matches, taken both ways (1.0 = same text). Default threshold: halfway between the
    median similarity of each article to its closest other article and 1.0, so it follows
    the knowledge base and the model (about 0.77 on the sample articles with MiniLM).
    """
    from kb.app.dupes import find_service_duplicates

    app.require_home()
    report = find_service_duplicates(app.service(), threshold=threshold)
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(
        f"{len(report.pairs)} pairs at or above {report.threshold:.3f} among "
        f"{report.articles} articles ({report.threshold_source})"
    )
    for pair in report.pairs:
        click.echo(f"{pair.similarity:.3f}  {pair.a}  ~  {pair.b}")
        click.echo(f"       {pair.title_a}  |  {pair.title_b}")
        for section in pair.sections:
            click.echo(f"       {section['a']} ~ {section['b']} ({section['similarity']:.2f})")


@articles.command(name="stale")
@click.option(
    "--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="The usage window."
)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="Show at most this many.",
)
@home_option
@pass_app
@reports_errors
def articles_stale(app: AppContext, days: int, as_json: bool, limit: int) -> None:
    """Articles to review or retire, most harmful first.

    \b
    Listed when:
      overdue      the review_by date has passed;
      unused       no "used" choice named it and no closed incident was linked to it
                   in the last DAYS days (and it existed all that time);
      passed over  shown above the result an agent used, or in a list where the agent
                   said none helped ("skipped");
      flagged      an agent flagged it from a result (wrong, outdated, unclear) and the
                   flag is still open.

    \b
    Ranking, most harmful first:
      harm = 2 x open flags + times skipped + days overdue / 30 + (1 if unused)
    A flag is an agent saying the article failed them; a skip is an agent who read the
    article and had to move on; a month overdue weighs about one skip; an unused
    article is clutter that hides the others.
    """
    from kb.stale import HARM_EXPLANATION, stale_articles

    app.require_home()
    stale = stale_articles(app.service().store(), days=days)[:limit]
    if as_json:
        echo_json({"days": days, "explanation": HARM_EXPLANATION, "articles": stale})
        return
    click.echo(f"{len(stale)} stale articles (window {days} days; {HARM_EXPLANATION})")
    for row in stale:
        click.echo(f"{row['harm']:>7.2f}  {row['id']}: {'; '.join(row['reasons'])}")


@articles.command(name="draft-from-incident")
@click.argument("incident_id")
@click.option(
    "--id", "article_id", default=None, help="Article id (default: from the incident's title)."
)
@click.option("--owner", default="", help="Who will review the draft.")
@dir_option
@home_option
@pass_app
@reports_errors
def articles_draft_from_incident(
    app: AppContext, incident_id: str, article_id: str | None, owner: str, folder: str | None
) -> None:
    """Write a draft article from a resolved incident (KCS capture) and print its path.

    The customer's words become the Symptoms and the resolution note the Resolution; the
    draft carries the tag source-incident and a source_incident: line naming INCIDENT_ID.
    """
    from kb.authoring import find_article_file, slugify, write_new_article
    from kb.drafts import draft_from_incident

    app.require_home()
    incident = app.service().store().get_incident(incident_id)
    target = _folder(app, folder)
    if article_id is None:
        default_id, _ = draft_from_incident(incident)
        taken = (target / f"{default_id}.md").exists() or find_article_file(
            target, default_id, missing_ok=True
        ) is not None
        article_id = f"{default_id}-{slugify(incident.id)}".strip("-") if taken else default_id
    article_id, text = draft_from_incident(incident, article_id=article_id, owner=owner)
    click.echo(str(write_new_article(target, article_id, text)))


@articles.command(name="set-state")
@click.argument("article_id")
@click.argument("state", type=click.Choice(["draft", "not_validated", "validated", "archived"]))
@click.option(
    "--audience",
    type=click.Choice(["internal", "public"]),
    default=None,
    help="Also set the audience (public needs state validated).",
)
@click.option(
    "--by",
    "changed_by",
    default=None,
    help="Who made the change (default: kb --as NAME, else the OS user).",
)
@dir_option
@home_option
@pass_app
@reports_errors
def articles_set_state(
    app: AppContext,
    article_id: str,
    state: str,
    audience: str | None,
    changed_by: str | None,
    folder: str | None,
) -> None:
    """Change an article's state in its file and in the store.

    The front matter is edited in place (status, audience, updated; nothing else in the
    file changes). Only validated articles may be public, and an article that fails
    `kb articles lint` cannot become not_validated, validated or public (the errors are
    named); one holding a secret is refused in any state. If the article is in the store
    it gets a new version and is re-indexed at once: an archived article leaves search
    right away and keeps its history (`kb articles history`). The change is written to
    the audit log (action "article state").
    """
    from kb.app.article_states import change_article_state

    app.require_home()
    change = change_article_state(
        app.service(),
        article_id,
        state,
        folder=_folder(app, folder),
        audience=audience,
        changed_by=_who(changed_by),
    )
    if not change.changed:
        click.echo(
            f"{article_id} is already {change.new_status} ({change.new_audience}); "
            f"nothing to change in {change.path}"
        )
    else:
        click.echo(
            f"{article_id}: {change.old_status} -> {change.new_status}"
            + (
                f", audience {change.old_audience} -> {change.new_audience}"
                if change.old_audience != change.new_audience
                else ""
            )
            + f" in {change.path}"
        )
    if change.in_store:
        click.echo(
            f"store: version {change.store_version}"
            + ("; removed from search" if change.left_search else "")
        )
    for note in change.notes:
        click.echo(f"note: {note}")


@articles.command(name="history")
@click.argument("article_id")
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON.")
@home_option
@pass_app
@reports_errors
def articles_history(app: AppContext, article_id: str, as_json: bool) -> None:
    """Every stored version of an article: when, who, what changed, and the diff."""
    from kb.authoring import article_history

    app.require_home()
    history = article_history(app.service().store(), article_id)
    if as_json:
        echo_json({"id": article_id, "versions": history})
        return
    for entry in history:
        click.echo(
            f"v{entry['version']}  {entry['changed_at']}  by {entry['changed_by'] or '?'}  "
            f"[{entry['status']}]  changed: {', '.join(entry['changes'])}"
        )
        if entry["version"] > 1 and entry["diff"]:
            click.echo(entry["diff"].rstrip("\n"))
        click.echo("")
