"""The Flask app: ``create_app()`` builds it; ``kb serve`` runs it under gunicorn.

Nothing here opens SQLite or loads a model at import or creation time: the service does
that lazily, in each worker process after the fork.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from kb.config import Config, load_config

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


class StoredKeySessions(SecureCookieSessionInterface):
    """Session cookies signed with the key kept in the database, read on first use.

    A worker must start even while the database is down (it answers 503 until it is
    back), so the key is not read when the app is made: until it can be read, requests
    carry no session, and whatever they need from the database answers 503 by itself."""

    def get_signing_serializer(self, app: Flask):
        if not app.secret_key:
            from kb.errors import StoreUnavailableError

            try:
                app.secret_key = app.extensions["kb_service"].session_key()
            except StoreUnavailableError:
                return None
        return super().get_signing_serializer(app)


def create_app(
    test_config: dict[str, Any] | None = None, *, config: Config | None = None, service=None
) -> Flask:
    """Build the app. ``config`` defaults to the environment's; ``service`` to a new
    :class:`kb.app.service.Service` (tests pass one with a fake embedder)."""
    from kb.app.service import Service
    from web import api, curation, errors, oidc, pages

    config = config or load_config()
    config.check_webhook()
    config.check_events()
    config.check_database_url()
    config.check_oidc()
    service = service or Service(config)
    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config.from_mapping(
        # The embedded store is a local file: its key is read (or made) now; a shared
        # database's on first use (StoredKeySessions).
        SECRET_KEY=config.secret_key or (None if config.database_url else service.session_key()),
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=config.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=config.secure_cookies,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="kb_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        JSON_SORT_KEYS=False,
        KB_CONFIG=config,
    )
    if test_config:
        app.config.from_mapping(test_config)
    app.extensions["kb_service"] = service
    app.session_interface = StoredKeySessions()
    errors.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(curation.bp)
    oidc.init_app(app, config)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
