"""The agent's pages: sign in, describe an incident, see ranked resolutions, record the
outcome, open an article. Works as plain forms; static/app.js adds search-as-you-type."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from kb.articles import render_markdown
from kb.errors import KBError, NotFoundError
from kb.models import SEARCHABLE_ARTICLE_STATES
from search.ranking import Filters, Viewer
from search.suggester import SuggestRequest
from web.auth import (
    MANAGERS,
    check_csrf,
    csrf_token,
    current_principal,
    login_required,
    safe_next,
    service,
    sign_in,
    sign_out,
    store,
)

bp = Blueprint("pages", __name__)

MAX_PASTE_CHARS = 20_000


def viewer_for(principal) -> Viewer:
    return Viewer(include_drafts=principal.role in MANAGERS)


@bp.app_context_processor
def template_globals():
    return {"csrf_token": csrf_token, "principal": lambda: current_principal()}


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "POST":
        check_csrf()
        name = request.form.get("name", "")[:100]
        password = request.form.get("password", "")[:1000]
        principal = store().authenticate_user(name, password)
        if principal is None:
            flash("Wrong name or password.", "error")
            return render_template("login.html", next=next_url, name=name), 401
        sign_in(principal)
        return redirect(next_url)
    return render_template("login.html", next=next_url, name="")


@bp.post("/logout")
def logout():
    check_csrf()
    sign_out()
    return redirect(url_for("pages.login"))


@bp.get("/")
@login_required()
def search_page():
    principal = current_principal()
    form = {
        "title": request.args.get("title", ""),
        "description": request.args.get("description", ""),
        "incident_id": request.args.get("incident_id", "")[:200],
        "product": request.args.get("product", "")[:200],
    }
    notice = None
    if len(form["description"]) > MAX_PASTE_CHARS:
        form["description"] = form["description"][:MAX_PASTE_CHARS]
        notice = f"The description was cut to its first {MAX_PASTE_CHARS:,} characters."
    suggestion = None
    if (form["title"] + form["description"]).strip():
        req = SuggestRequest(
            title=form["title"][:1000], description=form["description"], k=5,
            incident_ref=form["incident_id"], filters=Filters(product=form["product"]),
            viewer=viewer_for(principal),
        )
        suggestion = service().suggester().suggest(store(), req, principal=principal.name)
        if suggestion.truncated and not notice:
            notice = "Only the start of this long text was searched."
    return render_template(
        "search.html", form=form, suggestion=suggestion, notice=notice,
        max_paste=MAX_PASTE_CHARS, products=_products(),
    )


def _products() -> list[str]:
    try:
        state = service().suggester().ensure_state(store())
    except KBError:
        return []
    return sorted({d.product for d in state.docs.values() if d.product})


@bp.post("/feedback")
@login_required()
def feedback_form():
    """The no-JavaScript path for "Used this" and "None helped"."""
    principal = current_principal()
    suggestion_id = request.form.get("suggestion_id", "")
    used = request.form.get("used") or None
    outcome = "used" if used else "none_helped"
    record = store().record_feedback(suggestion_id, outcome=outcome, used_id=used, agent=principal.name)
    messages = {
        "created": "Thanks: your choice is recorded.",
        "unchanged": "Your choice was already recorded.",
        "changed": "Your choice is changed.",
    }
    flash(messages[record.status], "ok")
    back = safe_next(request.form.get("back"))
    return redirect(back)


@bp.get("/articles/<article_id>")
@login_required()
def article_page(article_id: str):
    principal = current_principal()
    article = store().get_article(article_id)
    visible = article.status in SEARCHABLE_ARTICLE_STATES or (
        principal.role in MANAGERS and article.status == "draft"
    )
    if not visible:
        raise NotFoundError(f"no article with id {article_id!r}")
    html = render_markdown(article.body)
    if request.args.get("partial"):
        return render_template("_article_body.html", article=article, body_html=html)
    return render_template("article.html", article=article, body_html=html)


@bp.get("/incidents/<incident_id>")
@login_required()
def incident_page(incident_id: str):
    incident = store().get_incident(incident_id)
    return render_template("incident.html", incident=incident)
