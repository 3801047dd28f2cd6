"""The agent's pages: sign in, describe an incident, see ranked resolutions, record the
outcome, open an article, capture a draft when nothing fits, and the knowledge-manager
dashboard. Everything works as plain forms; static/app.js adds search-as-you-type."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from kb.app.outcomes import record_choice, resolution_note
from kb.app.requests import Filters, SuggestRequest, Viewer
from kb.articles import parse_article_text, render_markdown
from kb.authoring import write_new_article
from kb.drafts import draft_from_text
from kb.errors import ConflictError, KBError, NotFoundError, ValidationError
from kb.models import MANAGERS, PEOPLE, SEARCHABLE_ARTICLE_STATES, Article
from kb.names import distinct_by_key
from web.auth import (
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
from web.serialize import public_base_url, result_url

bp = Blueprint("pages", __name__)

MAX_PASTE_CHARS = 20_000
MAX_TITLE_CHARS = 1000
RESULTS_SHOWN = 5
# Sign-in throttling, counted in the store so every worker (and node) sees the same count:
# five wrong passwords for one name, or twenty from one address, within five minutes lock
# that name or address until the oldest of them is five minutes old.
SIGN_IN_FAILURES_PER_USER = 5
SIGN_IN_FAILURES_PER_ADDRESS = 20
SIGN_IN_WINDOW = 300.0


def viewer_for(principal) -> Viewer:
    return Viewer(include_drafts=principal.role in MANAGERS)


def confidence_label(score: float, band: str | None = None) -> str:
    """Words for the estimated chance a resolution fits: the band the service gave it
    (search.confidence), else the old cut-offs on the number (app.js does the same)."""
    if band:
        return band.capitalize()
    if score >= 0.7:
        return "High"
    if score >= 0.4:
        return "Medium"
    return "Low"


def percent(score: float) -> str:
    return "<1%" if score < 0.005 else f"{round(score * 100)}%"


def fix_parts(resolution: str, code: list[dict]) -> list[tuple[str, str]]:
    """A result's "Fix" as ("text" | "code" | "block", text) pieces, so the page shows the
    code in it as code (static/app.js splits it the same way)."""
    parts, pos = [], 0
    for piece in code:
        at = resolution.find(piece["text"], pos)
        if at < 0 or not piece["text"]:
            continue
        if at > pos:
            parts.append(("text", resolution[pos:at]))
        parts.append(("block" if piece["block"] else "code", piece["text"]))
        pos = at + len(piece["text"])
    if pos < len(resolution):
        parts.append(("text", resolution[pos:]))
    return parts


@bp.app_context_processor
def template_globals():
    return {
        "csrf_token": csrf_token,
        "principal": lambda: current_principal(),
        "confidence_label": confidence_label,
        "percent": percent,
        "managers": MANAGERS,
        "fix_parts": fix_parts,
        "result_url": result_url,
        "note_of": note_of,
    }


def note_of(result) -> str:
    """The resolution note of a shown result (the same text the API gives)."""
    return resolution_note(
        result.kind,
        result.id,
        result.title,
        result.fix_text(),
        public_base_url().rstrip("/") + result_url(result),
    )


# --- signing in ------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    expired = request.values.get("reason") == "expired"
    typed = typed_incident(request.form)[0] if has_typed_text(request.form) else None
    if request.method == "POST":
        check_csrf()
        name = request.form.get("name", "")[:100]
        password = request.form.get("password", "")[:1000]
        user_key, address_key = f"user:{name.casefold()}", f"addr:{request.remote_addr or ''}"
        # The attempt counts as a failure until the password proves right: attempts sent
        # at once cannot all pass the check before any failure is recorded.
        wait, attempt = store().begin_sign_in(
            {user_key: SIGN_IN_FAILURES_PER_USER, address_key: SIGN_IN_FAILURES_PER_ADDRESS},
            window=SIGN_IN_WINDOW,
        )
        if wait > 0:
            flash(
                f"Too many failed sign-ins for this name or from this address; try again in "
                f"{math.ceil(wait)} seconds.",
                "error",
            )
            response = make_response(
                render_template(
                    "login.html", next=next_url, name=name, expired=expired, typed=typed
                ),
                429,
            )
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        principal = store().authenticate_user(name, password)
        if principal is None:
            flash("Wrong name or password.", "error")
            return render_template(
                "login.html", next=next_url, name=name, expired=expired, typed=typed
            ), 401
        store().sign_in_succeeded(attempt, user_key)
        sign_in(principal)
        if typed is not None:
            # The session had ended while an incident was being searched: the page posted
            # what was typed to this form, and the search goes on where it stopped.
            return search_and_show(principal, request.form)
        return redirect(next_url)
    return render_template("login.html", next=next_url, name="", expired=expired, typed=None)


@bp.post("/logout")
def logout():
    check_csrf()
    sign_out()
    return redirect(url_for("pages.login"))


# --- searching -------------------------------------------------------------------------


def typed_incident(values) -> tuple[dict[str, str], list[str]]:
    """The incident as typed (a posted form), capped, with notices for what was cut."""
    form = {
        "title": values.get("title", ""),
        "description": values.get("description", ""),
        "incident_id": values.get("incident_id", "")[:200],
        "product": values.get("product", "")[:200],
    }
    notices = []
    if len(form["title"]) > MAX_TITLE_CHARS:
        form["title"] = form["title"][:MAX_TITLE_CHARS]
        notices.append(f"The title was cut to its first {MAX_TITLE_CHARS:,} characters.")
    if len(form["description"]) > MAX_PASTE_CHARS:
        form["description"] = form["description"][:MAX_PASTE_CHARS]
        notices.append(f"The description was cut to its first {MAX_PASTE_CHARS:,} characters.")
    return form, notices


def has_typed_text(values) -> bool:
    return any(values.get(name, "").strip() for name in ("title", "description"))


def _stored_tier(incident_id: str) -> str:
    if not incident_id:
        return ""
    try:
        return service().stored_incident(incident_id).customer_tier
    except NotFoundError:
        return ""


def search_and_show(principal, values, *, customer_tier: str | None = None):
    """Search for a posted incident, record the suggestion, and send the browser to it by
    id (``/?sid=...``): the text itself never goes into an address, so it stays out of
    access logs, browser history and shared links, and a reload shows the same search."""
    form, notices = typed_incident(values)
    if not (form["title"] + form["description"]).strip():
        return redirect(url_for("pages.search_page"), 303)
    req = SuggestRequest(
        title=form["title"],
        description=form["description"],
        k=RESULTS_SHOWN,
        incident_ref=form["incident_id"],
        filters=Filters(product=form["product"]),
        viewer=viewer_for(principal),
        customer_tier=_stored_tier(form["incident_id"]) if customer_tier is None else customer_tier,
    )
    suggestion = service().suggest(req, caller=principal.name)
    for notice in notices:
        flash(notice, "notice")
    return redirect(url_for("pages.search_page", sid=suggestion.id), 303)


@bp.route("/", methods=["GET", "POST"])
@login_required()
def search_page():
    principal = current_principal()
    if request.method == "POST":
        return search_and_show(principal, request.form)
    form = {
        "title": "",
        "description": "",
        "incident_id": request.args.get("incident_id", "")[:200],
        "product": request.args.get("product", "")[:200],
    }
    suggestion = chosen = None
    notices = []
    if has_typed_text(request.args):
        # A link with the text in its query string fills in the form and searches nothing:
        # a link from another site must not record a search in this person's name.
        form, cut = typed_incident(request.args)
        notices.extend(cut)
        notices.append("Check the incident below and press Search to look it up.")
        return render_template(
            "search.html",
            form=form,
            suggestion=None,
            chosen=None,
            notice=" ".join(notices),
            max_paste=MAX_PASTE_CHARS,
            max_title=MAX_TITLE_CHARS,
            products=_products(),
            back=_back_url(None),
            storms=_storms(),
        )
    sid = request.args.get("sid", "")[:100]
    if form["incident_id"] and not sid:
        # Ask only once: a ticket system links to /?incident_id=INC-1, and an incident the
        # store holds is searched as it was stored, without retyping.
        try:
            incident = service().stored_incident(form["incident_id"])
        except NotFoundError:
            notices.append(f"No incident {form['incident_id']} is stored yet: describe it below.")
        else:
            return search_and_show(
                principal,
                {
                    "title": incident.title,
                    "description": incident.description,
                    "incident_id": incident.id,
                    "product": form["product"],
                },
                customer_tier=incident.customer_tier,
            )
    if sid:
        shown = _shown_suggestion(sid, principal)
        if shown is None:
            notices.append(
                "That search is not one of yours, or no longer kept: describe the incident again."
            )
        else:
            form, suggestion, chosen = shown
            if suggestion.truncated:
                notices.append(
                    f"This text is longer than {service().config.max_query_chars:,} characters: its error lines, "
                    "its start and its end were searched."
                )
    return render_template(
        "search.html",
        form=form,
        suggestion=suggestion,
        chosen=chosen,
        notice=" ".join(notices),
        max_paste=MAX_PASTE_CHARS,
        max_title=MAX_TITLE_CHARS,
        products=_products(),
        back=_back_url(suggestion),
        storms=_storms(),
    )


def _storms() -> list[dict]:
    from kb.app.storms import current_storms

    try:
        return current_storms(service())
    except KBError:
        return []


def typed_from_suggestion(shown: dict) -> dict[str, str]:
    """The incident as it was typed for a recorded suggestion: its title, and the rest of
    the searched text as the description."""
    title, query = shown.get("title") or "", shown["query"]
    if title and query == title:
        description = ""
    elif title and query.startswith(title + "\n"):
        description = query[len(title) + 1 :]
    else:
        description = query
    return {
        "title": title,
        "description": description,
        "incident_id": shown.get("incident_ref") or "",
        "product": (shown.get("filters") or {}).get("product") or "",
    }


def _shown_suggestion(sid: str, principal):
    """(form, suggestion, choice) for a suggestion this person was shown: the same search
    again, limited to the results shown then, with the choice already made, so it can be
    seen and changed. None for an unknown id or someone else's."""
    store().settle_suggestion(
        sid, principal=principal.name
    )  # shown again: a previewed search is kept
    try:
        shown = store().get_suggestion(sid)
    except NotFoundError:
        return None
    if shown["principal"] != principal.name:
        return None
    form = typed_from_suggestion(shown)
    req = SuggestRequest(
        title=form["title"],
        description=form["description"],
        k=RESULTS_SHOWN,
        incident_ref=form["incident_id"],
        filters=Filters(product=form["product"]),
        viewer=viewer_for(principal),
        customer_tier=_stored_tier(form["incident_id"]),
    )
    again = service().suggest(req, record=False)
    ids = {r["id"] for r in shown["results"]}
    again.results = [r for r in again.results if r.id in ids]
    again.id = sid
    agent = store().redactor.redact(principal.name)  # as record_feedback stored it
    mine = [f for f in store().feedback_for(sid) if f["agent"] == agent]
    return form, again, (mine[0] if mine else None)


def _back_url(suggestion) -> str:
    """Where a form posted from the search page returns: the same search, by id."""
    if suggestion is None:
        return url_for("pages.search_page")
    return url_for("pages.search_page", sid=suggestion.id)


def _with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return f"{parts.path}?{urlencode(query)}"


def _products() -> list[str]:
    try:
        state = service().search_state()
    except KBError:
        return []
    return distinct_by_key(state.docs.distinct("product"))


@bp.post("/feedback")
@login_required()
def feedback_form():
    """The no-JavaScript path for "Used this" and "None helped"."""
    principal = current_principal()
    suggestion_id = request.form.get("suggestion_id", "")[:100]
    used = request.form.get("used") or None
    outcome = "used" if used else "none_helped"
    record, _ = record_choice(
        service(),
        store(),
        suggestion_id,
        outcome=outcome,
        used_id=used,
        agent=principal.name,
        base_url=public_base_url(),
        caller=principal.name,
    )
    messages = {
        "created": "Thanks: your choice is recorded.",
        "unchanged": "Your choice was already recorded.",
        "changed": "Your choice is changed.",
    }
    flash(messages[record.status], "ok")
    back = safe_next(request.form.get("back"))
    return redirect(_with_param(back, "sid", suggestion_id) if back.startswith("/?") else back)


# --- reading ---------------------------------------------------------------------------


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
    _audit_read(principal, "article", article_id)
    html = render_markdown(article.body)
    if request.args.get("partial"):
        return render_template("_article_body.html", article=article, body_html=html)
    return render_template("article.html", article=article, body_html=html, heading="h1")


@bp.get("/incidents/<incident_id>")
@login_required()
def incident_page(incident_id: str):
    incident = service().stored_incident(incident_id)
    _audit_read(current_principal(), "incident", incident_id)
    if request.args.get("partial"):
        return render_template("_incident_body.html", incident=incident)
    return render_template("incident.html", incident=incident, heading="h1")


def _audit_read(principal, kind: str, doc_id: str) -> None:
    """Reads by knowledge managers and admins go to the audit log (agents' reads do not:
    they are the service's everyday use)."""
    if principal.role in MANAGERS:
        store().audit(f"{principal.via}:{principal.name}", "read", f"{kind}:{doc_id}")


# --- capturing a draft -----------------------------------------------------------------
# Knowledge-centred support: whoever meets a gap captures it. Agents may start a draft;
# it is stored as status `draft`, which only knowledge managers and admins see or search.


def write_draft(folder: Path, form: dict[str, str], *, owner: str, taken) -> Article:
    """Write a new draft file ``<id>.md`` into ``folder`` (never over another file,
    never outside the folder) and return the article as `kb import articles` reads it.
    ``taken(id)`` says whether the store already has an article with that id.

    The id is opaque (``draft-`` and random hex), not made from the typed title: an id is
    written where erasure cannot take it back (the index log other workers follow, the
    audit log), and a typed title can hold a name."""
    folder = folder.resolve()
    for _ in range(100):
        article_id = f"draft-{secrets.token_hex(6)}"
        if (folder / f"{article_id}.md").resolve().parent != folder:
            raise ValidationError("the draft's file name would leave the articles folder")
        if taken(article_id):
            continue
        text = draft_from_text(
            form["title"],
            form["description"],
            article_id=article_id,
            product=form["product"],
            incident_ref=form["incident_id"],
            owner=owner,
        )
        try:
            path = write_new_article(folder, article_id, text)
        except ConflictError:
            continue
        article = parse_article_text(text, source=str(path)).article
        article.path = str(path)
        return article
    raise ConflictError("no free draft id; try again")


@bp.post("/drafts")
@login_required(*PEOPLE)
def start_draft():
    """Create a draft article from the typed incident: a Markdown file in the articles
    folder and a `draft` row in the store (searchable by knowledge managers at once)."""
    principal = current_principal()
    form, _ = typed_incident(request.form)
    back = safe_next(request.form.get("back"))
    if not (form["title"] + form["description"]).strip():
        flash("Describe the incident first, then start a draft from it.", "error")
        return redirect(back)
    config = current_app.config["KB_CONFIG"]
    kb = store()
    form = dict(
        form,
        **{
            name: kb.redactor.redact(form[name])
            for name in ("title", "description", "product", "incident_id")
        },
    )
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    limit_reached = (
        f"You have started {config.drafts_per_person_per_day} drafts in the last 24 hours; "
        "a knowledge manager will work through them first."
    )
    if kb.count_recent_drafts(principal.name, since) >= config.drafts_per_person_per_day:
        flash(limit_reached, "error")
        return redirect(back)

    def taken(article_id: str) -> bool:
        try:
            kb.get_article(article_id)
        except NotFoundError:
            return False
        return True

    folder = config.drafts_path
    folder.mkdir(parents=True, exist_ok=True)
    article = write_draft(folder, form, owner=principal.name, taken=taken)
    # Counted again with the insert, atomically: drafts posted at once all passed the check above.
    if not kb.add_draft_within_limit(
        article, owner=principal.name, since=since, limit=config.drafts_per_person_per_day
    ):
        Path(article.path).unlink(missing_ok=True)
        flash(limit_reached, "error")
        return redirect(back)
    service().index_documents([("article", article.id)])
    if principal.role in MANAGERS:
        flash(
            f"Draft saved as {Path(article.path).name}. Fill in the cause and the resolution.", "ok"
        )
        return redirect(url_for("pages.article_page", article_id=article.id))
    flash(
        f"Draft article “{article.title}” saved for a knowledge manager to complete. Thank you.",
        "ok",
    )
    return redirect(back)


# --- the knowledge manager's dashboard -------------------------------------------------

DASHBOARD_WINDOWS = (7, 30, 90, 365)


@bp.get("/dashboard")
@login_required(*MANAGERS)
def dashboard():
    """What `kb report` shows, served by the app: usage over time, the articles that carry
    the load, gaps and stale articles. Charts are inline SVG (no script, no style=)."""
    from kb.app.report import build_report
    from kb.app.report_html import report_charts

    try:
        days = int(request.args.get("days", "90"))
    except ValueError:
        days = 90
    if days not in DASHBOARD_WINDOWS:
        days = 90
    report = build_report(service(), days=days)
    return render_template(
        "dashboard.html",
        report=report,
        charts=report_charts(report),
        days=days,
        windows=DASHBOARD_WINDOWS,
        reused=[r for r in report["reuse"] if r["reuse"]][:15],
        flags=store().article_flags()[:50],
    )
