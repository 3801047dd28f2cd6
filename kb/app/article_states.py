"""Changing an article's state: its file, its stored versions and the index, together."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from kb.app.service import Service
from kb.articles import ParsedArticle
from kb.authoring import (
    StateChange,
    edit_article_state,
    find_article_file,
    front_matter_id,
    write_file_atomically,
)
from kb.errors import NotFoundError, ValidationError
from kb.lint import ERROR, LintProblem, lint_text
from kb.models import Article

# States in which an article is offered to agents: it must pass lint to get there.
FINISHED_STATES = ("not_validated", "validated")


def lint_errors(text: str, path: Path, *, today: dt.date | None = None) -> list[LintProblem]:
    """The lint errors (not warnings) of one article's text, its links resolved beside ``path``."""
    today = today or dt.datetime.now(dt.UTC).date()
    _, problems, _ = lint_text(text, str(path), today=today, folder=path.parent)
    return [p for p in problems if p.severity == ERROR]


def describe_errors(errors: list[LintProblem], limit: int = 5) -> str:
    shown = "; ".join(f"line {p.line}: {p.message} [{p.code}]" for p in errors[:limit])
    more = f"; and {len(errors) - limit} more" if len(errors) > limit else ""
    return f"{len(errors)} lint error{'s' if len(errors) != 1 else ''}: {shown}{more}"


def refuse_unfinished(
    after: ParsedArticle, text: str, path: Path, *, today: dt.date | None = None
) -> None:
    """Raise ValidationError when an article would reach agents (not_validated, validated
    or public) while it fails lint, or would reach the store holding a secret."""
    errors = lint_errors(text, path, today=today)
    article = after.article
    finished = article.status in FINISHED_STATES or article.audience == "public"
    blocking = errors if finished else [p for p in errors if p.code == "secret"]
    if blocking:
        raise ValidationError(
            f"{article.id} cannot be {article.status}"
            + (f" ({article.audience})" if article.audience == "public" else "")
            + f": {describe_errors(blocking)}; fix them (`kb articles lint {path}`) and try again"
        )


def _stored(service: Service, article_id: str) -> Article | None:
    try:
        return service.store().get_article(article_id)
    except NotFoundError:
        return None


def locate_article_file(service: Service, article_id: str, *, folder: Path) -> Path:
    """The file of an article: the one in ``folder`` with its id, else the file the store
    read it from (drafts started from the agent page live in the data home).

    Raises NotFoundError."""
    path = find_article_file(folder, article_id, missing_ok=True)
    if path is not None:
        return path
    stored = _stored(service, article_id)
    if stored is not None and stored.path and Path(stored.path).is_file():
        candidate = Path(stored.path)
        if front_matter_id(candidate) == article_id:
            return candidate
    raise NotFoundError(f"no article with id {article_id!r} in {folder}")


def change_article_state(
    service: Service,
    article_id: str,
    status: str,
    *,
    folder: Path,
    audience: str | None = None,
    changed_by: str = "",
    actor: str = "",
    audit_action: str = "article state",
    today: dt.date | None = None,
) -> StateChange:
    """Set an article's state (and audience) in its file and in the store.

    The file is edited in place; when the article is in the store it is upserted from the
    edited file (a new version, with who changed it) and re-indexed at once, so an
    archived article leaves search while its versions stay. A change is written to the
    audit log (``audit_action``, by ``actor``, else ``changed_by``).

    An article is refused (ValidationError naming the errors, nothing changed) when it
    would reach agents (not_validated, validated or public) while it fails lint, and in any
    state when it holds a secret (a password, key or token): a secret never reaches the store.

    Raises NotFoundError for an unknown id, ValidationError when the rules forbid it.
    """
    store = service.store()
    stored = _stored(service, article_id)
    path = locate_article_file(service, article_id, folder=folder)
    before, after, new_text = edit_article_state(path, status, audience=audience, today=today)
    refuse_unfinished(after, new_text.replace("\r\n", "\n"), path, today=today)
    change = StateChange(
        article_id=article_id,
        path=str(path),
        old_status=before.article.status,
        new_status=after.article.status,
        old_audience=before.article.audience,
        new_audience=after.article.audience,
        changed=after is not before,
    )
    if change.changed:
        write_file_atomically(path, new_text)
    if stored is None:
        change.notes.append("not in the store yet: `kb import articles` loads it")
        return change
    article = after.article
    article.path = stored.path or str(path)
    counts = store.upsert_articles([article], changed_by=changed_by)
    change.in_store = True
    change.store_version = store.article_versions(article_id)[-1]["version"]
    if change.changed:
        detail = f"{change.old_status} -> {change.new_status}"
        if change.old_audience != change.new_audience:
            detail += f", audience {change.old_audience} -> {change.new_audience}"
        store.audit(
            actor or changed_by,
            audit_action,
            f"article:{article_id}",
            f"{detail} (version {change.store_version})",
        )
    if counts.changed_ids:
        service.index_documents([("article", article_id)])
        change.left_search = article.status == "archived"
    return change
