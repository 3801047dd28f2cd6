"""Who is calling: bearer tokens for tools, signed session cookies for people.

Roles: agent, integration, knowledge_manager, admin. Cookie sessions carry a CSRF token;
every state-changing request made with a cookie must echo it (form field ``csrf_token``
or header ``X-CSRF-Token``). Bearer-token requests need no CSRF token: a browser never
attaches one on its own.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import urlparse

from flask import current_app, g, redirect, render_template, request, session, url_for

from kb.app.requests import Principal
from kb.errors import AuthError, ForbiddenError
from kb.models import PEOPLE

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# The fields of the agent page's incident form, carried through a sign-in.
TYPED_FIELDS = ("title", "description", "incident_id", "product")


def service():
    return current_app.extensions["kb_service"]


def store():
    return service().store()


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_principal() -> Principal | None:
    """The caller, from a bearer token or a session cookie; cached for the request."""
    if "principal" in g:
        return g.principal
    principal = None
    if request.headers.get("Authorization"):
        token = bearer_token()
        principal = store().principal_for_token(token) if token else None
        if principal is None:
            g.principal = None
            raise AuthError("the API token is missing, malformed, revoked or unknown")
    elif session.get("user"):
        principal = store().get_user(session["user"])
        if principal is None or store().session_epoch(principal.name) != session.get("epoch"):
            principal = None  # signed out elsewhere, a new password or role, or disabled
            session.pop("user", None)
            session.pop("epoch", None)
    g.principal = principal
    return principal


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Reject a cookie-authenticated unsafe request without the session's CSRF token."""
    expected = session.get("csrf")
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    if not expected or not sent or not hmac.compare_digest(str(expected), str(sent)):
        raise ForbiddenError("missing or wrong CSRF token: reload the page and try again")


def require_roles(*roles: str) -> Callable:
    """API guard: 401 without credentials, 403 for a role not in ``roles``."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal is None:
                raise AuthError("send 'Authorization: Bearer <token>' (see `kb tokens create`)")
            if principal.role not in roles:
                raise ForbiddenError(f"role {principal.role!r} may not do this")
            if principal.via == "session" and request.method in UNSAFE_METHODS:
                check_csrf()
            return view(*args, **kwargs)

        wrapper.allowed_roles = roles  # read by the route-walking tests and the OpenAPI doc
        return wrapper

    return decorate


def login_required(*roles: str) -> Callable:
    """Page guard: send people who are not signed in to the sign-in page."""
    roles = roles or PEOPLE

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if principal is None:
                # A form posted after the session ended: an incident being searched is
                # kept in the sign-in form itself (never in an address), and the search
                # goes on after signing in; anything else returns to the page it came
                # from (its `back` field), not to a POST-only address.
                if request.method in UNSAFE_METHODS:
                    if any(request.form.get(name, "").strip() for name in ("title", "description")):
                        typed = {name: request.form.get(name, "")[:20_000] for name in TYPED_FIELDS}
                        page = render_template(
                            "login.html", next="/", name="", expired=True, typed=typed
                        )
                        return page, 401
                    target = safe_next(request.form.get("back"))
                    return redirect(url_for("pages.login", next=target, reason="expired"))
                return redirect(url_for("pages.login", next=safe_next(request.full_path)))
            if principal.role not in roles:
                raise ForbiddenError("your role may not open this page")
            if request.method in UNSAFE_METHODS:
                check_csrf()
            return view(*args, **kwargs)

        wrapper.allowed_roles = roles
        return wrapper

    return decorate


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after sign-in. A control character (CR and LF
    would split the Location header) or a backslash (browsers read "/\\host" as "//host")
    sends the person home instead."""
    if not target or any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in target):
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target.rstrip("?") or "/"


def sign_in(principal: Principal) -> None:
    session.clear()
    session["user"] = principal.name
    session["epoch"] = store().session_epoch(principal.name)
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True


def sign_out() -> None:
    """End this person's sessions everywhere: a copy of the cookie replayed later (or on
    another device) is no longer signed in."""
    name = session.get("user")
    if name:
        store().end_sessions(name)
    session.clear()
