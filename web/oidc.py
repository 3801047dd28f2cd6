"""Sign-in through the organisation: OpenID Connect (authorization code flow) with Authlib.

Optional: on when ``KB_OIDC_ISSUER`` is set. Authlib reads the provider's discovery
document, sends the browser there with a fresh ``state`` and ``nonce`` kept in the signed
session, and on the way back checks the state, exchanges the code, and verifies the ID
token (signature against the provider's published keys, issuer, audience, expiry and
nonce). The person's role here comes from a claim (``KB_OIDC_ROLE_CLAIM``) mapped by
``KB_OIDC_ROLES``; local accounts keep working beside it.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from kb.config import Config
from kb.errors import ForbiddenError, ValidationError
from kb.models import PEOPLE
from web.auth import safe_next, sign_in, store

log = logging.getLogger(__name__)

bp = Blueprint("oidc", __name__)
CLIENT = "organisation"
# Higher roles first: a person in several mapped groups gets the highest.
_ROLE_ORDER = ("admin", "knowledge_manager", "agent")


def init_app(app: Flask, config: Config) -> None:
    """Register the provider when one is configured (nothing is fetched until first use)."""
    enabled = bool(config.oidc_issuer.strip())
    app.config["KB_OIDC_ENABLED"] = enabled
    app.register_blueprint(bp)

    @app.context_processor
    def oidc_globals():
        return {"oidc_enabled": enabled}

    if not enabled:
        return
    config.check_oidc()
    scopes = config.oidc_scopes.split()
    if "openid" not in scopes:
        scopes.insert(0, "openid")
    oauth = OAuth(app)
    oauth.register(
        CLIENT,
        client_id=config.oidc_client_id,
        client_secret=config.oidc_client_secret,
        server_metadata_url=config.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": " ".join(scopes), "timeout": 10},
    )
    app.extensions["kb_oidc"] = oauth


def role_from_claims(claims: dict[str, Any], config: Config) -> str | None:
    """The role a person gets from their ID token's claims; None when none applies."""
    value = claims.get(config.oidc_role_claim)
    values = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
    mapping = config.oidc_role_map()
    matched = {mapping[v] for v in values if isinstance(v, str) and v in mapping}
    for role in _ROLE_ORDER:
        if role in matched:
            return role
    default = config.oidc_default_role.strip()
    return default if default in PEOPLE else None


def name_from_claims(claims: dict[str, Any], config: Config) -> str:
    for claim in (config.oidc_name_claim, "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    raise ValidationError("the ID token names nobody (no name, email or sub claim)")


def _client():
    oauth = current_app.extensions.get("kb_oidc")
    if oauth is None:
        return None
    return oauth.create_client(CLIENT)


def _refuse(reason: str, status: int = 401):
    log.warning("organisation sign-in refused: %s", reason)
    return render_template(
        "login.html", next="/", name="", expired=False, typed=None, oidc_error=reason
    ), status


@bp.get("/login/organisation")
def start():
    client = _client()
    if client is None:
        return redirect(url_for("pages.login"))
    session["oidc_next"] = safe_next(request.args.get("next"))
    try:
        config = current_app.config["KB_CONFIG"]
        return client.authorize_redirect(
            config.oidc_redirect_uri.strip() or url_for("oidc.callback", _external=True)
        )
    except Exception as exc:  # the provider's discovery document cannot be read
        log.warning("organisation sign-in: cannot reach the provider: %s", exc)
        return _refuse(
            "the organisation's sign-in service cannot be reached; try again, or sign in "
            "with a local account",
            503,
        )


@bp.get("/login/organisation/callback")
def callback():
    client = _client()
    if client is None:
        return redirect(url_for("pages.login"))
    config = current_app.config["KB_CONFIG"]
    try:
        token = client.authorize_access_token()
    except OAuthError as exc:
        return _refuse(f"the sign-in answer was not accepted ({exc.error or 'error'}); start again")
    except Exception as exc:  # bad signature, wrong issuer/audience/nonce, expired, network
        return _refuse(f"the identity token was not accepted ({type(exc).__name__}); start again")
    claims = token.get("userinfo")
    if not claims:
        return _refuse("the provider sent no ID token; start again")
    role = role_from_claims(dict(claims), config)
    if role is None:
        return _refuse(
            "your organisation account has no role in this service; ask an administrator", 403
        )
    try:
        name = name_from_claims(dict(claims), config)
        principal = store().sign_in_external(
            name, role, identity=f"{claims['iss']}|{claims['sub']}"
        )
    except (ForbiddenError, ValidationError) as exc:
        return _refuse(str(exc), 403)
    target = session.get("oidc_next") or "/"
    sign_in(principal)
    return redirect(safe_next(target))
