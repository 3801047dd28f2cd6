"""Knowledge managers' pages: browse and search the articles, edit one with a live
preview, move drafts through the review queue; and the form agents use to flag an article.

Every rule is the one `kb articles` applies (kb.app.curation): the Markdown file is the
source of truth and is written back; lint refuses errors; concurrent edits are refused.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from kb.app.curation import (
    REVIEW_STEPS,
    EditConflict,
    LintRefusal,
    article_source,
    browse_articles,
    filter_choices,
    preview,
    review_queue,
    review_step,
    save_article_text,
    unified_diff,
)
from kb.app.requests import FLAG_KINDS
from kb.authoring import article_history
from kb.errors import NotFoundError
from kb.models import ARTICLE_STATES, MANAGERS, PEOPLE, SEARCHABLE_ARTICLE_STATES
from web.auth import current_principal, login_required, safe_next, service, store

bp = Blueprint("curation", __name__)

MAX_EDIT_CHARS = 1_000_000
STATE_NAMES = {
    "draft": "Draft",
    "not_validated": "Not validated yet",
    "validated": "Validated",
    "archived": "Archived",
}
STEP_LABELS = {
    "not_validated": "Send for review",
    "validated": "Validate",
    "draft": "Back to draft",
}


def _folder() -> Path:
    return Path(current_app.config["KB_CONFIG"].articles_dir)


def _who() -> tuple[str, str]:
    """(name for the article's history, actor for the audit log)."""
    principal = current_principal()
    return principal.name, f"{principal.via}:{principal.name}"


def flag_back(article_id: str) -> str:
    """Where the flag form returns: the search it was opened from (the article panel is
    fetched by the search page, which is then the referrer), else the article's page."""
    if request.args.get("partial"):
        parts = urlsplit(request.referrer or "")
        if parts.netloc == request.host and parts.path == url_for("pages.search_page"):
            return safe_next(parts.path + ("?" + parts.query if parts.query else ""))
        return url_for("pages.search_page")
    return url_for("pages.article_page", article_id=article_id)


@bp.app_context_processor
def curation_globals():
    return {"state_names": STATE_NAMES, "flag_kinds": FLAG_KINDS, "flag_back": flag_back}


@bp.get("/manage/articles")
@login_required(*MANAGERS)
def article_list():
    filters = {
        name: request.args.get(name, "")[:200].strip()
        for name in ("text", "product", "category", "state", "owner", "review_before")
    }
    if filters["state"] not in ARTICLE_STATES:
        filters["state"] = ""
    try:
        rows = browse_articles(store(), **filters)
    except NotFoundError:
        rows = []
    return render_template(
        "manage_list.html",
        rows=rows,
        filters=filters,
        choices=filter_choices(store()),
        states=ARTICLE_STATES,
    )


def _editor(article_id: str, *, text: str, base_hash: str, problems=(), conflict=None, status=200):
    article = store().get_article(article_id)
    return render_template(
        "manage_edit.html",
        article=article,
        text=text,
        base_hash=base_hash,
        problems=list(problems),
        conflict=conflict,
        preview_html=preview(text)["html"],
        flags=store().article_flags(article_id),
    ), status


@bp.get("/manage/articles/<article_id>/edit")
@login_required(*MANAGERS)
def edit_article(article_id: str):
    source = article_source(service(), article_id, folder=_folder())
    return _editor(article_id, text=source.text, base_hash=source.hash)


@bp.post("/manage/articles/<article_id>/edit")
@login_required(*MANAGERS)
def save_article(article_id: str):
    text = request.form.get("text", "")[:MAX_EDIT_CHARS].replace("\r\n", "\n")
    base_hash = request.form.get("base_hash", "")[:100]
    name, actor = _who()
    try:
        saved = save_article_text(
            service(),
            article_id,
            text,
            base_hash=base_hash,
            folder=_folder(),
            changed_by=name,
            actor=actor,
        )
    except EditConflict as exc:
        conflict = {
            "message": str(exc),
            "current": exc.current,
            "diff": unified_diff(exc.current, text, old_name="saved meanwhile", new_name="yours"),
        }
        # The next save is based on the text now on disk: saving again is a deliberate choice
        # made after seeing both.
        return _editor(
            article_id, text=text, base_hash=exc.current_hash, conflict=conflict, status=409
        )
    except LintRefusal as exc:
        flash(str(exc), "error")
        return _editor(
            article_id, text=text, base_hash=base_hash, problems=exc.problems, status=422
        )
    if not saved.changed:
        flash("Nothing changed; the file is as it was.", "notice")
        return redirect(url_for("curation.edit_article", article_id=article_id), 303)
    flash(f"Saved {Path(saved.path).name} as version {saved.version}.", "ok")
    return redirect(url_for("curation.history", article_id=article_id), 303)


@bp.post("/manage/preview")
@login_required(*MANAGERS)
def preview_markdown():
    """The live preview: the body rendered by the article page's renderer."""
    payload = request.get_json(silent=True) or {}
    text = str(payload.get("text") or request.form.get("text", ""))[:MAX_EDIT_CHARS]
    article_id = str(payload.get("id") or "")[:200]
    path = None
    if article_id:
        path = article_source(service(), article_id, folder=_folder()).path
    result = preview(text, path=path)
    if path is not None:  # name the file, never the server's folders
        for problem in result["problems"]:
            problem["path"] = path.name
    return jsonify(result)


@bp.get("/manage/articles/<article_id>/history")
@login_required(*MANAGERS)
def history(article_id: str):
    article = store().get_article(article_id)
    versions = list(reversed(article_history(store(), article_id)))
    return render_template(
        "manage_history.html",
        article=article,
        versions=versions,
        flags=store().article_flags(article_id, open_only=False),
    )


@bp.get("/manage/review")
@login_required(*MANAGERS)
def review():
    return render_template(
        "manage_review.html",
        queue=review_queue(store()),
        steps=REVIEW_STEPS,
        step_labels=STEP_LABELS,
    )


@bp.post("/manage/articles/<article_id>/state")
@login_required(*MANAGERS)
def change_state(article_id: str):
    to_state = request.form.get("state", "")[:40]
    name, actor = _who()
    try:
        change = review_step(
            service(), article_id, to_state, folder=_folder(), changed_by=name, actor=actor
        )
    except LintRefusal as exc:
        return render_template(
            "manage_refused.html",
            article_id=article_id,
            to_state=to_state,
            message=str(exc),
            problems=exc.problems,
        ), 422
    flash(
        f"{article_id}: {STATE_NAMES[change.old_status]} → {STATE_NAMES[change.new_status]}"
        + (f" (version {change.store_version})" if change.store_version else "")
        + ".",
        "ok",
    )
    return redirect(safe_next(request.form.get("back") or url_for("curation.review")), 303)


@bp.post("/manage/articles/<article_id>/flags/resolve")
@login_required(*MANAGERS)
def resolve_flags(article_id: str):
    _, actor = _who()
    count = store().resolve_article_flags(article_id, by=actor)
    flash(f"{count} flag(s) on {article_id} resolved.", "ok")
    return redirect(
        safe_next(request.form.get("back") or url_for("curation.history", article_id=article_id)),
        303,
    )


@bp.post("/articles/<article_id>/flags")
@login_required(*PEOPLE)
def flag_article(article_id: str):
    """An agent says an article in their results is wrong, outdated or unclear."""
    name, _ = _who()
    article = store().get_article(article_id)
    if article.status not in SEARCHABLE_ARTICLE_STATES and current_principal().role not in MANAGERS:
        raise NotFoundError(f"no article with id {article_id!r}")
    store().flag_article(
        article_id, request.form.get("kind", "")[:40], request.form.get("note", ""), agent=name
    )
    flash("Thanks: the article is flagged for a knowledge manager.", "ok")
    return redirect(
        safe_next(request.form.get("back") or url_for("pages.article_page", article_id=article_id)),
        303,
    )


__all__ = ["bp"]
