"""Security basics, each with a test that fails when the protection goes.

- API tokens and passwords are stored only as hashes and compared in constant time.
- Every route in the app (walked from app.url_map, so routes added later are covered) answers
  each role, and no credentials, as its ``allowed_roles`` say; public routes are listed here.
- User text never reaches sqlite-utils' raw-SQL arguments (``where=``, ``order_by=``,
  ``select=``), no SQL lives outside kb/store, SQL- and FTS5-looking input is inert.
- Request bodies are limited; article paths cannot leave the articles folder; cookie
  sessions need the CSRF token; security headers are on every response, errors included.
"""

from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.errors import RecordError, ValidationError
from kb.lexical import query_terms
from kb.models import ROLES
from kb.store import access
from tests.conftest import REPO
from web import create_app

ROOT = REPO
PACKAGES = ("kb", "indexer", "search", "web", "scripts")
# Routes anyone may call. A new route without @require_roles / @login_required fails
# test_every_route_declares_who_may_call_it until it is added here on purpose.
PUBLIC_ENDPOINTS = {
    "static",
    "api.health",
    "api.openapi",
    "pages.login",
    "pages.logout",
    "oidc.start",
    "oidc.callback",
}  # sign-in through the organisation
CSRF = "test-csrf-token"


# --- tokens and passwords ----------------------------------------------------------------


def test_tokens_are_stored_only_as_hashes(indexed):
    store = indexed.store()
    token = store.create_token("hash-check", "integration")
    rows = list(store.db["api_tokens"].rows_where("name = ?", ["hash-check"]))
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    store.db.conn.execute("PRAGMA wal_checkpoint(FULL)")
    secret = token.removeprefix(access.TOKEN_PREFIX).encode()
    for path in Path(store.path).parent.glob("kb.sqlite3*"):
        assert secret not in path.read_bytes(), f"the plain token is in {path.name}"


def test_tokens_are_compared_in_constant_time(indexed, monkeypatch):
    store = indexed.store()
    token = store.create_token("timing", "agent")
    calls = []
    real = access.hmac.compare_digest
    monkeypatch.setattr(
        access.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b)
    )
    assert store.principal_for_token(token).name == "timing"
    assert calls and calls[-1][0] == calls[-1][1] == access.hash_token(token)
    assert store.principal_for_token(token + "x") is None
    assert store.principal_for_token("kbt_" + "a" * 500) is None
    store.revoke_tokens("timing")
    assert store.principal_for_token(token) is None


def test_passwords_are_salted_slow_hashes(indexed, monkeypatch):
    store = indexed.store()
    store.create_user("pw-check", "agent", "correct horse battery")
    stored = store.db["users"].get("pw-check")["password_hash"]
    scheme, iterations, salt, digest = stored.split("$")
    assert (
        scheme == "pbkdf2_sha256" and int(iterations) >= 100_000 and len(bytes.fromhex(salt)) >= 16
    )
    assert "correct horse" not in stored
    calls = []
    real = access.hmac.compare_digest
    monkeypatch.setattr(access.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert store.authenticate_user("pw-check", "correct horse battery") is not None
    assert store.authenticate_user("pw-check", "wrong password") is None
    assert len(calls) == 2
    # An unknown name costs a full hash too, so names cannot be probed by timing.
    spent = []
    real_pbkdf2 = access.hashlib.pbkdf2_hmac
    monkeypatch.setattr(
        access.hashlib, "pbkdf2_hmac", lambda *a: spent.append(a[3]) or real_pbkdf2(*a)
    )
    assert store.authenticate_user("nobody-here", "whatever1") is None
    assert spent and max(spent) >= 100_000


# --- roles on every route -------------------------------------------------------------------


@pytest.fixture
def role_app(indexed, config):
    store = indexed.store()
    tokens = {role: store.create_token(f"walk-{role}", role) for role in ROLES}
    for role in ROLES:
        store.create_user(f"person-{role}", role, "a long enough password")
    app = create_app({"TESTING": True}, config=config, service=indexed)
    return app, tokens


def routes(app):
    """(rule, method, endpoint, allowed roles or None) for every route the app has."""
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, rule.endpoint, getattr(view, "allowed_roles", None)


def url_for_rule(app, rule) -> str:
    values = {
        name: "static-check.css" if name == "filename" else "no-such-thing"
        for name in rule.arguments
    }
    with app.test_request_context():
        return app.url_map.bind("localhost").build(rule.endpoint, values, force_external=False)


def call(
    app,
    method: str,
    url: str,
    *,
    token: str | None = None,
    user: str | None = None,
    csrf: bool = True,
):
    client = app.test_client()
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if user:
        with client.session_transaction() as session:
            session["user"], session["csrf"], session["epoch"] = user, CSRF, 0
        if csrf:
            headers["X-CSRF-Token"] = CSRF
    body = {} if method != "GET" else None
    return client.open(url, method=method, json=body, headers=headers)


def test_every_route_declares_who_may_call_it(role_app):
    app, _ = role_app
    undeclared = {
        endpoint for _, _, endpoint, roles in routes(app) if roles is None
    } - PUBLIC_ENDPOINTS
    assert not undeclared, (
        f"routes without allowed_roles (add a guard or list them as public): {undeclared}"
    )
    for _, _, endpoint, roles in routes(app):
        assert roles is None or set(roles) <= set(ROLES), endpoint


def test_every_route_enforces_its_roles(role_app):
    app, tokens = role_app
    checked = 0
    for rule, method, _endpoint, roles in routes(app):
        if roles is None:
            continue
        url = url_for_rule(app, rule)
        is_api = rule.rule.startswith("/api/")
        where = f"{method} {rule.rule}"
        anonymous = call(app, method, url)
        if is_api:
            assert anonymous.status_code == 401, where
            assert set(anonymous.get_json()["error"]) == {"code", "message"}, where
        else:
            assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"], where
        for role in ROLES:
            # Tools use bearer tokens on the API; people use signed-in sessions on pages.
            if is_api:
                response = call(app, method, url, token=tokens[role])
            else:
                response = call(app, method, url, user=f"person-{role}")
            if role in roles:
                assert response.status_code not in (401, 403), (where, role, response.status_code)
                assert response.status_code < 500, (
                    where,
                    role,
                    response.get_data(as_text=True)[:300],
                )
            else:
                assert response.status_code == 403, (where, role, response.status_code)
            checked += 1
        bad = call(app, method, url, token="kbt_not-a-real-token")
        assert bad.status_code == 401, where
    assert checked >= 4 * 8


def test_openapi_roles_match_the_routes(role_app):
    from web.openapi import openapi_document

    app, _ = role_app
    documented = {
        (path, method.upper()): op.get("x-roles")
        for path, item in openapi_document()["paths"].items()
        for method, op in item.items()
    }
    for rule, method, _endpoint, roles in routes(app):
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert (path, method) in documented, f"{method} {path} is not in the OpenAPI document"
        if roles is not None:
            assert set(documented[(path, method)] or []) == set(roles), f"{method} {path}"


# --- SQL ------------------------------------------------------------------------------------

RAW_SQL_KEYWORDS = {"where", "order_by", "select"}
WHERE_FIRST = {"rows_where", "count_where", "delete_where", "pks_and_rows_where"}
SQL_CALLS = {
    "execute",
    "executemany",
    "executescript",
    "query",
    "rows_where",
    "count_where",
    "delete_where",
    "pks_and_rows_where",
}


def python_files(*packages: str):
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def placeholders(node: ast.AST) -> bool:
    """``",".join("?" * n)``: a list of ? marks, however long."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and len(node.args) == 1
        and isinstance(node.args[0], ast.BinOp)
        and isinstance(node.args[0].op, ast.Mult)
        and isinstance(node.args[0].left, ast.Constant)
        and node.args[0].left.value == "?"
    )


def constant_sql(node: ast.AST, safe_names: frozenset[str] = frozenset()) -> bool:
    """A string fixed in the source: literals, UPPER_CASE constants, ? placeholder lists,
    names assigned only from those, and joins of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) or node.value is None
    if isinstance(node, ast.Name):
        return node.id.isupper() or node.id in safe_names
    if isinstance(node, ast.Attribute):
        return node.attr.isupper()
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return constant_sql(node.left, safe_names) and constant_sql(node.right, safe_names)
    if isinstance(node, ast.JoinedStr):
        return all(
            isinstance(v, ast.Constant)
            or (isinstance(v, ast.FormattedValue) and constant_sql(v.value, safe_names))
            for v in node.values
        )
    return placeholders(node)


def safe_names_in(scope: ast.AST) -> frozenset[str]:
    """Names that are only ever assigned constant SQL in this scope."""
    assigned: dict[str, bool] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    ok = constant_sql(node.value, frozenset(k for k, v in assigned.items() if v))
                    assigned[target.id] = assigned.get(target.id, True) and ok
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension)):
            target = node.target
            if isinstance(target, ast.Name):
                assigned[target.id] = False
    return frozenset(name for name, ok in assigned.items() if ok)


def raw_sql_arguments(tree: ast.AST):
    scopes = [
        tree,
        *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))),
    ]
    seen: set[int] = set()
    for scope in reversed(scopes):  # innermost functions first: their own assignments count
        safe = safe_names_in(scope)
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or id(node) in seen:
                continue
            seen.add(id(node))
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            for keyword in node.keywords:
                if keyword.arg in RAW_SQL_KEYWORDS and not constant_sql(keyword.value, safe):
                    yield node.lineno, f"{name}({keyword.arg}=...)"
            if name in WHERE_FIRST and node.args and not constant_sql(node.args[0], safe):
                yield node.lineno, f"{name}(<where>)"


def test_user_text_never_reaches_raw_sql_arguments():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {call}"
        for path in python_files(*PACKAGES)
        for line, call in raw_sql_arguments(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, "raw-SQL arguments built at run time (use ? placeholders): " + "; ".join(
        found
    )


def test_the_scan_would_catch_an_injection():
    code = (
        "def f(db, name):\n"
        "    db['t'].rows_where(f\"name = '{name}'\")\n"
        "    db['t'].rows(where='a = ' + name)\n"
        "    db['t'].rows_where('x = ?', [name], order_by=name)\n"
        "    db['t'].rows_where('x = ?', [name], order_by='id desc', select=COLUMNS)\n"
        "    marks = ','.join('?' * len(name))\n"
        "    db['t'].rows_where(f'id IN ({marks})', list(name))\n"
        "    clause = 'a = ' + name\n"
        "    db['t'].rows_where(clause)\n"
    )
    assert sorted(call for _, call in raw_sql_arguments(ast.parse(code))) == sorted(
        [
            "rows_where(<where>)",
            "rows(where=...)",
            "rows_where(order_by=...)",
            "rows_where(<where>)",
        ]
    )


def test_no_sql_outside_the_store():
    sql_text = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA)\s")
    found = []
    for path in python_files(*PACKAGES):
        if path.is_relative_to(ROOT / "kb" / "store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and sql_text.match(node.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: SQL text")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS
                and _looks_like_db(node.func.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.func.attr}()")
    assert not found, found


def _looks_like_db(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return bool(re.search(r"\b(db|conn|connection|cursor)\b", text))


INJECTIONS = [
    "'; DROP TABLE incidents; --",
    '" OR 1=1 --',
    "x' OR '1'='1",
    "1; DELETE FROM feedback",
    "NEAR(vpn drops)",
    "vpn*",
    "title:vpn",
    '"unbalanced',
    "vpn AND OR NOT",
    "^vpn",
    "{text}: vpn",
    "-vpn +drops",
    "(",
    ")",
    "*",
    '""',
    "chunks_fts MATCH 'x'",
    "%",
    "_",
    "\\",
    "\x00x",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_and_fts_looking_input_is_inert(client, auth, indexed, text):
    store = indexed.store()
    before = (store.db["incidents"].count, store.db["articles"].count, store.count_chunks())
    response = client.post(
        "/api/v1/suggest",
        headers=auth("admin"),
        json={
            "title": f"vpn drops {text}",
            "description": text,
            "incident_id": text,
            "filters": {"product": text, "category": text},
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    feedback = client.post(
        f"/api/v1/suggestions/{body['suggestion_id']}/feedback",
        headers=auth("admin"),
        json={"used": None, "outcome": "none_helped", "agent": text},
    )
    assert feedback.status_code == 201
    # Stored as given, as the redactor writes every typed text (normalised: NUL becomes a space).
    assert store.feedback_for(body["suggestion_id"])[0]["agent"] == store.redactor.redact(text)
    assert store.redactor.redact(text) == text.replace("\x00", " ")
    missing = client.post(
        f"/api/v1/suggestions/{text}/feedback",
        headers=auth("admin"),
        json={"outcome": "none_helped"},
    )
    assert missing.status_code in (404, 405)
    assert (store.db["incidents"].count, store.db["articles"].count, store.count_chunks()) == before
    assert store.integrity_problems() == []


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(), terms=st.lists(st.text(min_size=1), max_size=6))
def test_fts5_match_expressions_are_always_valid(indexed, text, terms):
    store = indexed.store()
    store.fts_chunks(query_terms(text), 5)
    # Even terms the tokenizer would never produce stay quoted strings.
    store.fts_chunks([t.replace("\x00", "") for t in terms if t.replace("\x00", "")], 5)


# --- body size, paths, CSRF, headers -------------------------------------------------------


def test_request_bodies_are_limited(indexed, config, auth):
    app = create_app(
        {"TESTING": True}, config=config.with_overrides(max_body_bytes=5000), service=indexed
    )
    client = app.test_client()
    big = {"title": "vpn", "description": "x" * 6000}
    response = client.post("/api/v1/suggest", json=big, headers=auth("agent"))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "body_too_large"
    assert (
        client.post(
            "/api/v1/suggest",
            json={"title": "vpn", "description": "x" * 1000},
            headers=auth("agent"),
        ).status_code
        == 200
    )
    page = client.post("/login", data={"name": "x" * 6000, "password": "y"})
    assert page.status_code == 413 and page.mimetype == "text/html"


def test_the_default_body_limit(client, auth, config):
    response = client.post(
        "/api/v1/incidents",
        data=b"[" + b" " * config.max_body_bytes + b"]",
        headers={**auth("admin"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_article_files_cannot_escape_the_folder(tmp_path, articles_copy):
    from kb.articles import scan_articles
    from kb.authoring import write_new_article

    outside = tmp_path / "secret.md"
    outside.write_text(
        "---\nid: secret\ntitle: s\nstatus: validated\naudience: public\n---\nsecret\n"
    )
    (articles_copy / "link.md").symlink_to(outside)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "more.md").write_text(outside.read_text().replace("secret", "more"))
    (articles_copy / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    scan = scan_articles(articles_copy)
    ids = {p.article.id for p in scan.parsed}
    assert "secret" not in ids and "more" not in ids
    assert any("outside the articles folder" in str(p) for p in scan.problems)
    text = outside.read_text()
    for bad_id in ("../escape", "/etc/passwd", "a/b", "..", ".hidden"):
        with pytest.raises((RecordError, ValidationError)):
            write_new_article(articles_copy, bad_id, text.replace("id: secret", f"id: {bad_id}"))
    assert not (tmp_path / "escape.md").exists()


def test_article_pages_do_not_follow_paths(role_app):
    app, _ = role_app
    for path in ("/articles/..%2F..%2Fetc%2Fpasswd", "/articles/%2e%2e", "/articles/..\\secret"):
        response = call(app, "GET", path, user="person-agent")
        assert response.status_code == 404, path


def test_cookie_sessions_need_the_csrf_token(role_app):
    app, tokens = role_app
    body = {"title": "vpn", "description": "drops"}
    user = "person-agent"
    for path in ("/api/v1/suggest", "/feedback", "/drafts"):
        assert call(app, "POST", path, user=user, csrf=False).status_code == 403, path
    client = app.test_client()
    with client.session_transaction() as session:
        session["user"], session["csrf"], session["epoch"] = user, CSRF, 0
    wrong = client.post("/api/v1/suggest", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    right = client.post("/api/v1/suggest", json=body, headers={"X-CSRF-Token": CSRF})
    assert right.status_code == 200
    # Bearer tokens are never sent by a browser on its own: no CSRF token needed.
    bearer = app.test_client().post(
        "/api/v1/suggest", json=body, headers={"Authorization": f"Bearer {tokens['agent']}"}
    )
    assert bearer.status_code == 200
    # Signing in and out are protected too (login CSRF).
    assert app.test_client().post("/login", data={"name": user, "password": "x"}).status_code == 403
    assert call(app, "POST", "/logout", user=user, csrf=False).status_code == 403


def test_session_cookie_flags(role_app):
    app, _ = role_app
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["csrf"]
    response = client.post(
        "/login",
        data={"name": "person-agent", "password": "a long enough password", "csrf_token": csrf},
    )
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def assert_security_headers(response, where: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, where
    assert (
        "script-src 'self'" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    ), where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("X-Frame-Options") == "DENY", where
    assert response.headers.get("Referrer-Policy"), where


def test_security_headers_on_every_response(indexed, config, auth):
    app = create_app({"TESTING": True}, config=config, service=indexed)

    @app.get("/api/v1/boom-for-test")
    def boom():
        raise RuntimeError("a bug")

    @app.get("/boom-for-test")
    def boom_page():
        raise RuntimeError("a bug")

    client = app.test_client()
    cases = [
        ("GET", "/login", {}, None, 200),
        ("GET", "/", {}, None, 302),
        ("GET", "/no-such-page", {}, None, 404),
        ("GET", "/api/v1/no-such-thing", {}, None, 404),
        ("POST", "/api/v1/health", {}, None, 405),
        ("GET", "/api/v1/health", {}, None, 200),
        ("POST", "/api/v1/suggest", {}, {}, 401),
        ("GET", "/api/v1/metrics", auth("agent"), None, 403),
        ("POST", "/api/v1/suggest", auth("agent"), {"title": ""}, 400),
        ("GET", "/static/app.css", {}, None, 200),
        ("GET", "/api/v1/boom-for-test", {}, None, 500),
        ("GET", "/boom-for-test", {}, None, 500),
        ("GET", "/api/v1/openapi.json", {}, None, 200),
    ]
    for method, path, headers, body, status in cases:
        response = client.open(path, method=method, headers=headers, json=body)
        assert response.status_code == status, (path, response.status_code)
        assert_security_headers(response, f"{method} {path}")
        assert "Traceback" not in response.get_data(as_text=True)
        response.close()
    big = client.post(
        "/api/v1/suggest",
        data=b"x" * (config.max_body_bytes + 1),
        headers={**auth("agent"), "Content-Type": "application/json"},
    )
    assert big.status_code == 413
    assert_security_headers(big, "413")
