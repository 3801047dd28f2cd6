import json

import pytest

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines


def suggest(client, headers, **body):
    return client.post("/api/v1/suggest", json=body, headers=headers)


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in response.get_data(as_text=True)


def test_suggest_returns_ranked_results(client, auth):
    response = suggest(
        client, auth(), title="VPN drops", description="vpn keeps disconnecting at home", k=3
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["suggestion_id"].startswith("sg_")
    assert body["no_good_match"] is False
    assert [r["rank"] for r in body["results"]] == list(range(1, len(body["results"]) + 1))
    top = body["results"][0]
    assert {"rank", "kind", "id", "title", "resolution", "snippet", "score", "url"} <= set(top)
    assert (top["kind"], top["id"], top["url"]) == (
        "article",
        "net-vpn-drops",
        "/articles/net-vpn-drops",
    )
    assert 0 <= top["score"] <= 1


def test_feedback_roundtrip_is_idempotent(client, auth, indexed):
    body = suggest(client, auth(), description="mailbox full cannot send").get_json()
    sid, used = body["suggestion_id"], body["results"][0]["id"]
    payload = {"used": used, "outcome": "used", "agent": "ana"}
    first = client.post(f"/api/v1/suggestions/{sid}/feedback", json=payload, headers=auth())
    second = client.post(f"/api/v1/suggestions/{sid}/feedback", json=payload, headers=auth())
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.get_json()["status"], second.get_json()["status"]) == ("created", "unchanged")
    rows = indexed.store().feedback_for(sid)
    assert len(rows) == 1 and rows[0]["used_id"] == used and rows[0]["agent"] == "ana"


def test_feedback_none_helped(client, auth, indexed):
    sid = suggest(client, auth(), description="mailbox full").get_json()["suggestion_id"]
    response = client.post(
        f"/api/v1/suggestions/{sid}/feedback",
        json={"used": None, "outcome": "none_helped", "agent": "bo"},
        headers=auth(),
    )
    assert response.status_code == 201
    assert indexed.store().feedback_for(sid)[0]["outcome"] == "none_helped"


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"used": "not-in-results", "outcome": "used"}, 400),
        ({"outcome": "maybe"}, 400),
        ({"used": 12, "outcome": "used"}, 400),
        ([1, 2], 400),
    ],
)
def test_bad_feedback(client, auth, payload, status):
    sid = suggest(client, auth(), description="mailbox full").get_json()["suggestion_id"]
    assert_error(
        client.post(f"/api/v1/suggestions/{sid}/feedback", json=payload, headers=auth()), status
    )


def test_feedback_for_unknown_suggestion(client, auth):
    response = client.post(
        "/api/v1/suggestions/sg_nope/feedback", json={"outcome": "none_helped"}, headers=auth()
    )
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    "data, content_type",
    [
        ("{bad json", "application/json"),
        ("", "application/json"),
        ("{bad", "application/x-www-form-urlencoded"),
        ('"just a string"', "application/json"),
        ("[" * 100000 + "]" * 100000, "application/json"),
        (json.dumps({"title": "", "description": "  "}), "application/json"),
        (json.dumps({"description": "x", "k": 0}), "application/json"),
        (json.dumps({"description": "x", "k": "5"}), "application/json"),
        (json.dumps({"description": "x", "filters": "vpn"}), "application/json"),
        (json.dumps({"description": ["x"]}), "application/json"),
        (b"\xff\xfe".decode("latin-1"), "application/json"),
    ],
)
def test_malformed_suggest_requests(client, auth, data, content_type):
    response = client.post("/api/v1/suggest", data=data, content_type=content_type, headers=auth())
    assert_error(response, 400)


def test_body_size_limit(client, auth, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post(
        "/api/v1/suggest", data="x" * (limit + 1), content_type="application/json", headers=auth()
    )
    assert_error(response, 413, "body_too_large")


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer ", "bearer"])
def test_missing_or_wrong_token(client, header):
    headers = {"Authorization": header} if header else {}
    assert_error(
        client.post("/api/v1/suggest", json={"description": "x"}, headers=headers),
        401,
        "unauthorized",
    )


def test_roles_are_enforced(client, auth):
    incident = {"id": "API-1", "title": "t", "resolution": "r"}
    assert_error(
        client.post("/api/v1/incidents", json=incident, headers=auth("agent")), 403, "forbidden"
    )
    assert (
        client.post("/api/v1/incidents", json=incident, headers=auth("integration")).status_code
        == 201
    )


def test_posted_incidents_are_searchable_at_once(client, auth):
    records = [
        {
            "id": "API-7",
            "title": "projector in room 4 shows no signal",
            "description": "the meeting room projector says no signal with HDMI",
            "resolution": "Swapped the HDMI cable.",
            "status": "resolved",
        },
        {"id": "API-8", "title": "open one", "description": "still open", "status": "open"},
    ]
    response = client.post("/api/v1/incidents", json=records, headers=auth("integration"))
    assert response.status_code == 201
    assert response.get_json()["ids"] == ["API-7", "API-8"]
    body = suggest(client, auth(), description="projector has no signal over hdmi").get_json()
    assert body["results"][0]["id"] == "API-7"
    assert "API-8" not in [r["id"] for r in body["results"]]


@pytest.mark.parametrize(
    "payload",
    [
        {"title": "no id"},
        {"id": "x"},
        [],
        {"id": "x", "title": "t", "status": "weird"},
        "text",
        [{"id": "d", "title": "a"}, {"id": "d", "title": "b"}],
    ],
)
def test_bad_incidents(client, auth, payload):
    assert_error(client.post("/api/v1/incidents", json=payload, headers=auth("integration")), 400)


def test_unknown_routes_and_methods_use_the_error_shape(client, auth):
    assert_error(client.get("/api/v1/nothing", headers=auth()), 404, "not_found")
    assert_error(client.get("/api/v1/suggest", headers=auth()), 405, "method_not_allowed")


def test_health_and_openapi(client):
    health = client.get("/api/v1/health")
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/suggest" in spec["paths"]


def test_openapi_documents_every_api_route(app):
    from web.openapi import openapi_document

    documented = {
        (path, method.upper())
        for path, ops in openapi_document()["paths"].items()
        for method in ops
    }
    real = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = rule.rule.replace("<", "{").replace(">", "}")
            real |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert real == documented


def test_security_headers(client):
    response = client.get("/api/v1/health")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_health_without_an_index(config, service):
    from web import create_app

    app = create_app({"TESTING": True}, config=config, service=service)
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "index_missing"


def test_incident_ids_are_checked_and_urls_encoded(client, auth):
    for bad in ("../../etc/passwd", "XSS-1<svg onload=alert(1)>", "two words", "-leading-dash"):
        response = client.post(
            "/api/v1/incidents",
            json={"id": bad, "title": "t", "resolution": "r", "status": "resolved"},
            headers=auth("integration"),
        )
        assert response.status_code == 400, bad
        assert "letters, digits" in response.get_json()["error"]["message"]
    odd = "ops:2024#7"
    response = client.post(
        "/api/v1/incidents",
        json={
            "id": odd,
            "title": "turnstile badge rejected twice",
            "description": "turnstile badge rejected twice at gate",
            "resolution": "Re-encoded.",
            "status": "resolved",
        },
        headers=auth("integration"),
    )
    assert response.status_code == 201
    found = client.post(
        "/api/v1/suggest",
        json={"description": "turnstile badge rejected twice at gate"},
        headers=auth("agent"),
    ).get_json()["results"][0]
    assert found["id"] == odd and found["url"] == "/incidents/ops%3A2024%237"


def test_health_shows_details_only_to_callers_with_a_token(client, auth):
    anonymous = client.get("/api/v1/health")
    assert anonymous.status_code == 200 and anonymous.get_json() == {"status": "ok"}
    signed = client.get("/api/v1/health", headers=auth("agent")).get_json()
    assert signed["status"] == "ok" and {"index_version", "worker", "vectors", "documents"} <= set(
        signed
    )


def test_openapi_k_maximum_follows_the_max_k_setting():
    from web.openapi import openapi_document

    schema = openapi_document(max_k=7)["components"]["schemas"]["SuggestRequest"]
    assert schema["properties"]["k"]["maximum"] == 7
    assert (
        openapi_document()["components"]["schemas"]["SuggestRequest"]["properties"]["k"]["maximum"]
        == 50
    )


def test_product_names_take_the_spelling_in_use(client, auth, indexed):
    records = [
        {
            "id": "NEW-LAP-1",
            "title": "Laptop hinge cracked",
            "resolution": "Replaced the hinge.",
            "status": "resolved",
            "product": "laptop",
        },
        {
            "id": "NEW-LAP-2",
            "title": "Printer tray jams",
            "resolution": "Cleaned the rollers.",
            "status": "resolved",
            "product": "printers ",
        },
    ]
    assert (
        client.post("/api/v1/incidents", json=records, headers=auth("integration")).status_code
        == 201
    )
    store = indexed.store()
    assert store.get_incident("NEW-LAP-1").product == "Laptops"
    assert store.get_incident("NEW-LAP-2").product == "Printers"
    body = client.post(
        "/api/v1/suggest",
        json={"description": "laptop hinge cracked", "filters": {"product": "LAPTOP"}},
        headers=auth(),
    ).get_json()
    assert body["results"] and all(r["product"] == "Laptops" for r in body["results"])
