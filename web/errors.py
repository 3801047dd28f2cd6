"""One error shape for the API, HTML error pages elsewhere, never a stack trace."""

from __future__ import annotations

import json
import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from kb.errors import KBError, storage_failure

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    408: "request_timeout",
    414: "uri_too_long",
    431: "headers_too_large",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def api_error(status: int, code: str, message: str):
    response = jsonify(error_body(code, message))
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="kb"'
    return response


def _wants_json() -> bool:
    return request.path.startswith("/api/")


# A refused body up to this size is read and dropped, so that the client's keep-alive
# connection stays usable for its next request; a larger one ends the connection.
DRAIN_LIMIT = 16 * 1024 * 1024


def _drain_body() -> None:
    length = request.content_length or 0
    if not 0 < length <= DRAIN_LIMIT:
        return
    stream = request.environ.get("wsgi.input")
    remaining = length
    while stream is not None and remaining > 0:
        chunk = stream.read(min(remaining, 65536))
        if not chunk:
            break
        remaining -= len(chunk)


def refusal_body(app: Flask, status: int, path: str, message: str) -> tuple[str, bytes]:
    """The body of an answer given before the app saw the request (web.worker): the API's
    JSON error shape under /api, the error page elsewhere."""
    if path.startswith("/api/"):
        body = json.dumps(error_body(_HTTP_CODES.get(status, "error"), message)).encode()
        return "application/json", body
    try:
        with app.test_request_context("/"):
            page = render_template("error.html", status=status, message=message)
    except Exception:  # noqa: BLE001 - the plain answer below is still an answer
        log.exception("could not render the error page for a refused request")
        page = f"<!doctype html><title>{status}</title><p>{message}</p>"
    return "text/html; charset=utf-8", page.encode()


def init_app(app: Flask) -> None:
    @app.errorhandler(KBError)
    def handle_kb_error(exc: KBError):
        if _wants_json():
            return api_error(exc.http_status, exc.code, str(exc))
        return render_template(
            "error.html", status=exc.http_status, message=str(exc)
        ), exc.http_status

    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "error")
        message = exc.description or exc.name
        if status == 413:
            message = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
            _drain_body()
        if _wants_json():
            response = api_error(status, code, message)
            if status == 405 and exc.valid_methods:
                response.headers["Allow"] = ", ".join(exc.valid_methods)
        else:
            response = app.make_response(
                (render_template("error.html", status=status, message=message), status)
            )
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        failure = storage_failure(exc, app.config["KB_CONFIG"].home_path)
        if failure is not None:
            log.error("%s %s: %s", request.method, request.path, failure)
            return handle_kb_error(failure)
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "the server could not complete the request; it has been logged"
        if _wants_json():
            return api_error(500, "internal_error", message)
        return render_template("error.html", status=500, message=message), 500
