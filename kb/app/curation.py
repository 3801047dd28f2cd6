"""Knowledge managers' work on articles from the browser, under the rules of `kb articles`.

The Markdown file stays the source of truth: an edit is checked by the same lint as
`kb articles lint`, written back to the file (atomically), then stored as a new version
and re-indexed. An edit names the file content it started from (a hash); when the file
changed meanwhile the edit is refused with both texts, never written over the other.
State changes go through the review queue, one step at a time (draft -> not validated ->
validated), each running lint on the file as it would be and refusing on errors; who made
each step is in the article's stored history and in the audit log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fcntl
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.app.article_states import change_article_state, locate_article_file
from kb.app.service import Service
from kb.articles import MAX_ARTICLE_BYTES, parse_article_text, render_markdown, split_front_matter
from kb.authoring import StateChange, edit_article_state, today_utc, write_file_atomically
from kb.errors import ConflictError, NotFoundError, RecordError, ValidationError
from kb.lint import ERROR, LintProblem, lint_text
from kb.models import ARTICLE_STATES, Article

# The review queue's steps: to each state, the states it may be reached from.
REVIEW_STEPS: dict[str, tuple[str, ...]] = {
    "not_validated": ("draft",),
    "validated": ("not_validated",),
    "draft": ("not_validated", "validated"),
}
REVIEW_STATES = ("draft", "not_validated")


def text_hash(text: str) -> str:
    """What an edit names as the file content it started from."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LintRefusal(ValidationError):
    """Lint found errors: nothing was written. ``problems`` lists every problem found."""

    def __init__(self, message: str, problems: list[LintProblem]):
        super().__init__(message)
        self.problems = problems


class EditConflict(ConflictError):
    """The file changed since the edit began. ``current`` is the text on disk now, with
    ``current_hash`` to base a deliberate new edit on."""

    def __init__(self, message: str, *, current: str, current_hash: str):
        super().__init__(message)
        self.current = current
        self.current_hash = current_hash


@dataclass
class ArticleSource:
    article_id: str
    path: Path
    text: str
    hash: str


@dataclass
class SavedEdit:
    article_id: str
    path: str
    changed: bool
    version: int | None
    diff: str
    warnings: list[LintProblem] = field(default_factory=list)


def _edit_lock_path(service: Service) -> Path:
    return service.config.home_path / "article-edits.lock"


@contextlib.contextmanager
def edit_lock(service: Service) -> Iterator[None]:
    """One article write at a time across this machine's workers: the check that the
    file is unchanged and the write that follows it cannot interleave with another's."""
    path = _edit_lock_path(service)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> str:
    if path.stat().st_size > MAX_ARTICLE_BYTES:
        raise RecordError(f"file is larger than {MAX_ARTICLE_BYTES} bytes", source=path.name)
    return path.read_bytes().decode("utf-8").replace("\r\n", "\n")


def article_source(service: Service, article_id: str, *, folder: Path) -> ArticleSource:
    """The article's file as it is now. Raises NotFoundError."""
    path = locate_article_file(service, article_id, folder=folder)
    text = _read(path)
    return ArticleSource(article_id, path, text, text_hash(text))


def lint_article(text: str, path: Path, *, today: dt.date | None = None) -> list[LintProblem]:
    """`kb articles lint` on one article's text, as if it were the file at ``path``."""
    return lint_text(text, str(path), today=today or today_utc(), folder=path.parent)[1]


def _errors(problems: list[LintProblem]) -> list[LintProblem]:
    return [p for p in problems if p.severity == ERROR]


def unified_diff(old: str, new: str, *, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )


def _status_before(source: ArticleSource, stored: Article | None) -> str:
    """The state the article is in before an edit: its file's, or, when the file does not
    parse (broken by hand), the stored one's, else draft: a broken file is mended in the
    editor without the edit changing the state."""
    try:
        return parse_article_text(source.text, str(source.path)).article.status
    except RecordError:
        return stored.status if stored is not None else "draft"


def save_article_text(
    service: Service,
    article_id: str,
    text: str,
    *,
    base_hash: str,
    folder: Path,
    changed_by: str,
    actor: str = "",
    today: dt.date | None = None,
) -> SavedEdit:
    """Write an edited article back to its file and store it as a new version.

    Raises EditConflict when the file is no longer the text the edit started from,
    LintRefusal on lint errors, ValidationError when the edit changes the id or the
    state (states change through the review queue), NotFoundError for an unknown id.
    """
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    if len(text.encode("utf-8")) > MAX_ARTICLE_BYTES:
        raise ValidationError(f"the article is larger than {MAX_ARTICLE_BYTES} bytes")
    store = service.store()
    with edit_lock(service):
        source = article_source(service, article_id, folder=folder)
        if source.hash != base_hash:
            raise EditConflict(
                f"{source.path.name} changed since you opened it; nothing was saved. Compare your "
                "text with the one saved meanwhile, merge them, and save again.",
                current=source.text,
                current_hash=source.hash,
            )
        problems = lint_article(text, source.path, today=today)
        try:
            new = parse_article_text(text, str(source.path)).article
        except RecordError:
            new = None  # lint reports why
        try:
            stored = store.get_article(article_id)
        except NotFoundError:
            stored = None
        old_status = _status_before(source, stored)
        if new is not None and new.id != article_id:
            raise ValidationError(
                f"the id cannot change here (it is {article_id!r}); nothing was saved"
            )
        if new is not None and new.status != old_status:
            raise ValidationError(
                f"the state cannot change in the editor ({old_status} -> {new.status}): use the "
                "review queue, which checks each step; nothing was saved"
            )
        if _errors(problems) or new is None:
            raise LintRefusal(
                f"lint found {len(_errors(problems))} error(s); nothing was saved", problems
            )
        diff = unified_diff(
            source.text,
            text,
            old_name=f"{source.path.name} (before)",
            new_name=f"{source.path.name} (saved)",
        )
        if text == source.text:
            return SavedEdit(article_id, str(source.path), False, None, "", problems)
        write_file_atomically(source.path, text)
        new.path = stored.path if stored is not None and stored.path else str(source.path)
        counts = store.upsert_articles([new], changed_by=changed_by)
        version = store.article_versions(article_id)[-1]["version"]
        store.audit(
            actor or changed_by, "article edit", f"article:{article_id}", f"version {version}"
        )
    if counts.changed_ids:
        service.index_documents([("article", article_id)])
    return SavedEdit(article_id, str(source.path), True, version, diff, problems)


def review_step(
    service: Service,
    article_id: str,
    to_state: str,
    *,
    folder: Path,
    changed_by: str,
    actor: str = "",
    today: dt.date | None = None,
) -> StateChange:
    """Move an article one step through the review queue.

    Raises ValidationError for a step the queue does not offer, LintRefusal when the
    file, in its new state, has lint errors (nothing is written then).
    """
    if to_state not in REVIEW_STEPS:
        raise ValidationError(f"unknown step {to_state!r}; choose one of {', '.join(REVIEW_STEPS)}")
    with edit_lock(service):
        path = locate_article_file(service, article_id, folder=folder)
        _, _, new_text = edit_article_state(path, to_state, today=today)
        current = parse_article_text(_read(path), str(path)).article.status
        if current not in REVIEW_STEPS[to_state]:
            raise ValidationError(
                f"{article_id} is {current}: it cannot go to {to_state} from there "
                f"(only from {' or '.join(REVIEW_STEPS[to_state])})"
            )
        problems = lint_article(new_text.replace("\r\n", "\n"), path, today=today)
        if _errors(problems):
            raise LintRefusal(
                f"{article_id} cannot become {to_state}: lint found "
                f"{len(_errors(problems))} error(s); nothing was changed",
                problems,
            )
        change = change_article_state(
            service,
            article_id,
            to_state,
            folder=folder,
            changed_by=changed_by,
            actor=actor,
            audit_action="article review",
            today=today,
        )
    return change


def preview(text: str, *, path: Path | None = None, today: dt.date | None = None) -> dict[str, Any]:
    """The body rendered as the article page renders it, for an editor's live preview
    (text without valid front matter is previewed whole); with ``path``, also what lint
    finds in the text as if it were that file."""
    text = text.replace("\r\n", "\n")
    try:
        _, body, _ = split_front_matter(text, "preview")
    except RecordError:
        body = text
    out: dict[str, Any] = {"html": render_markdown(body)}
    if path is not None:
        out["problems"] = [p.to_dict() for p in lint_article(text, path, today=today)]
    return out


def browse_articles(
    store: Any,
    *,
    text: str = "",
    product: str = "",
    category: str = "",
    state: str = "",
    owner: str = "",
    review_before: str = "",
) -> list[dict[str, Any]]:
    """Articles matching every filter given, by id. ``text`` is matched (any letter case)
    against id, title, tags and body; ``review_before`` (YYYY-MM-DD) keeps those due by
    then. Each row carries the article and its open flag count."""
    if state and state not in ARTICLE_STATES:
        raise ValidationError(f"unknown state {state!r}")
    if review_before:
        try:
            dt.date.fromisoformat(review_before)
        except ValueError:
            raise ValidationError(f"review date {review_before!r} is not YYYY-MM-DD") from None
    needle = " ".join(text.split()).casefold()
    flags = store.open_flag_counts()
    rows = []
    for article in sorted(store.iter_articles(), key=lambda a: a.id):
        if state and article.status != state:
            continue
        if product and article.product.casefold() != product.casefold():
            continue
        if category and article.category.casefold() != category.casefold():
            continue
        if owner and owner.casefold() not in article.owner.casefold():
            continue
        if review_before and not (article.review_by and article.review_by <= review_before):
            continue
        if (
            needle
            and needle
            not in " ".join(
                [article.id, article.title, " ".join(article.tags), article.body]
            ).casefold()
        ):
            continue
        rows.append({"article": article, "flags": sum(flags.get(article.id, {}).values())})
    return rows


def filter_choices(store: Any) -> dict[str, list[str]]:
    """The products, categories and owners the stored articles use, for the list's filters."""
    articles: list[Article] = list(store.iter_articles())
    return {
        name: sorted({getattr(a, name) for a in articles if getattr(a, name)}, key=str.casefold)
        for name in ("product", "category", "owner")
    }


def review_queue(store: Any) -> dict[str, list[Article]]:
    """Articles waiting for a step: drafts, then those not validated yet, oldest first."""
    queue: dict[str, list[Article]] = {state: [] for state in REVIEW_STATES}
    for article in store.iter_articles():
        if article.status in queue:
            queue[article.status].append(article)
    for items in queue.values():
        items.sort(key=lambda a: (a.updated or "", a.id))
    return queue


__all__ = [
    "EditConflict",
    "LintRefusal",
    "REVIEW_STEPS",
    "SavedEdit",
    "article_source",
    "browse_articles",
    "filter_choices",
    "lint_article",
    "preview",
    "review_queue",
    "review_step",
    "save_article_text",
    "text_hash",
]
