import re

import pytest

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines


@pytest.fixture
def people(indexed):
    store = indexed.store()
    store.create_user("ana", "agent", "agent-password")
    store.create_user("kim", "knowledge_manager", "manager-password")
    return store


def csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def sign_in(client, name="ana", password="agent-password"):
    token = csrf(client)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token})


def test_pages_need_sign_in(client, people):
    response = client.get("/?description=vpn")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sign_in_needs_csrf_and_right_password(client, people):
    assert (
        client.post("/login", data={"name": "ana", "password": "agent-password"}).status_code == 403
    )
    assert sign_in(client, password="wrong-password").status_code == 401
    response = sign_in(client)
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def search(client, follow_redirects=False, **fields):
    """Post the search form as a browser without JavaScript would; returns the response
    (a redirect to the search by id)."""
    token = csrf(client, "/")
    return client.post(
        "/", data=dict({"csrf_token": token}, **fields), follow_redirects=follow_redirects
    )


def test_search_page_without_javascript(client, people):
    sign_in(client)
    page = search(
        client, title="vpn drops", description="vpn keeps disconnecting", follow_redirects=True
    )
    page = page.get_data(as_text=True)
    assert "net-vpn-drops" in page and "Used this" in page and "None helped" in page
    assert "<script>" not in page  # only the external app.js, no inline scripts
    assert re.search(r'<script src="/static/app.js" defer></script>', page)


def test_empty_search_shows_guidance(client, people):
    sign_in(client)
    page = client.get("/").get_data(as_text=True)
    assert "Describe the incident" in page


def test_feedback_form_records_choice_once(client, people, indexed):
    sign_in(client)
    page = search(client, description="mailbox full", follow_redirects=True).get_data(as_text=True)
    sid = re.search(r'name="suggestion_id" value="([^"]+)"', page).group(1)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    form = {"suggestion_id": sid, "used": "mail-quota", "csrf_token": token, "back": "/"}
    assert client.post("/feedback", data=form).status_code == 302
    assert client.post("/feedback", data=form).status_code == 302
    rows = indexed.store().feedback_for(sid)
    assert len(rows) == 1 and rows[0]["agent"] == "ana" and rows[0]["used_id"] == "mail-quota"
    no_csrf = dict(form, csrf_token="wrong")
    assert client.post("/feedback", data=no_csrf).status_code == 403


def test_cookie_api_calls_need_csrf_header(client, people):
    sign_in(client)
    assert client.post("/api/v1/suggest", json={"description": "vpn"}).status_code == 403
    token = csrf(client, "/")
    response = client.post(
        "/api/v1/suggest", json={"description": "vpn"}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 200


def test_article_page_renders_safely(client, people, indexed, articles_copy):
    from kb.articles import scan_articles

    (articles_copy / "evil.md").write_text(
        "---\nid: evil\ntitle: Evil\nstatus: validated\naudience: internal\n---\n\n"
        "## Symptoms\n<script>alert(1)</script> [x](javascript:alert(2))\n"
    )
    indexed.store().upsert_articles([p.article for p in scan_articles(articles_copy).parsed])
    sign_in(client)
    page = client.get("/articles/evil").get_data(as_text=True)
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'href="javascript' not in page


def test_agents_cannot_open_drafts(client, people):
    sign_in(client)
    assert client.get("/articles/bill-refund").status_code == 404
    assert client.get("/articles/net-vpn-drops").status_code == 200


def test_managers_can_open_drafts(client, people):
    sign_in(client, "kim", "manager-password")
    assert client.get("/articles/bill-refund").status_code == 200


def test_open_redirect_is_refused(client, people):
    token = csrf(client)
    response = client.post(
        "/login",
        data={
            "name": "ana",
            "password": "agent-password",
            "csrf_token": token,
            "next": "https://evil.example/",
        },
    )
    assert response.headers["Location"] == "/"


def draft_form(client, **fields):
    token = csrf(client, "/")
    return dict(
        {
            "title": "Coffee machine",
            "description": "it leaks\n## Cause\n<b>hot</b>",
            "incident_id": "INC-9",
            "product": "Kitchen",
            "back": "/?sid=sg_abc",
            "csrf_token": token,
        },
        **fields,
    )


def test_agent_starts_a_draft_from_typed_text(client, people, indexed, app, tmp_path):
    folder = tmp_path / "drafts"
    app.config["KB_CONFIG"] = app.config["KB_CONFIG"].with_overrides(drafts_dir=str(folder))
    sign_in(client)
    form = draft_form(client)
    assert client.post("/drafts", data=dict(form, csrf_token="wrong")).status_code == 403
    response = client.post("/drafts", data=form)
    assert response.status_code == 302 and response.headers["Location"] == "/?sid=sg_abc"
    again = client.post("/drafts", data=form)  # a second draft never overwrites the first
    assert again.status_code == 302
    names = sorted(p.name for p in folder.iterdir())
    # Opaque ids, not the typed title: an id stays in the index and audit logs.
    assert len(names) == 2 and all(
        re.fullmatch(r"draft-[0-9a-f]{12}\.md", name) for name in names
    ), names
    text = (folder / names[0]).read_text()
    assert "status: draft" in text and "owner: ana" in text and "incident INC-9" in text
    assert "title: Coffee machine" in text
    assert "> it leaks" in text and "\n## Cause\n<b>" not in text  # typed text stays plain
    article = indexed.store().get_article(names[0].removesuffix(".md"))
    assert (
        article.status == "draft"
        and article.product == "Kitchen"
        and article.title == "Coffee machine"
    )
    assert client.get(f"/articles/{article.id}").status_code == 404  # agents never see drafts


def test_a_draft_whose_product_holds_a_front_matter_fence_is_still_created(
    client, people, indexed, app, tmp_path
):
    folder = tmp_path / "drafts"
    app.config["KB_CONFIG"] = app.config["KB_CONFIG"].with_overrides(drafts_dir=str(folder))
    sign_in(client)
    product = "Kitchen\n---\nstatus: validated\naudience: public"
    response = client.post("/drafts", data=draft_form(client, product=product))
    assert response.status_code == 302 and response.headers["Location"] == "/?sid=sg_abc"
    article = next(a for a in indexed.store().iter_articles() if a.title == "Coffee machine")
    assert article.status == "draft" and article.audience == "internal"
    assert "Kitchen" in article.product and "status: validated" in article.product
    text = (folder / f"{article.id}.md").read_text()
    assert text.split("\n").count("---") == 2  # the front matter's own fences only


def test_manager_draft_opens_for_editing(client, people, app, tmp_path):
    app.config["KB_CONFIG"] = app.config["KB_CONFIG"].with_overrides(drafts_dir=str(tmp_path / "d"))
    sign_in(client, "kim", "manager-password")
    response = client.post("/drafts", data=draft_form(client, title="../../etc/passwd"))
    [path] = (tmp_path / "d").iterdir()  # the title never names the file
    assert response.headers["Location"] == f"/articles/{path.stem}"
    assert "This is a draft" in client.get(f"/articles/{path.stem}").get_data(as_text=True)


def test_empty_draft_is_refused_with_guidance(client, people, app, tmp_path):
    app.config["KB_CONFIG"] = app.config["KB_CONFIG"].with_overrides(drafts_dir=str(tmp_path / "d"))
    sign_in(client)
    response = client.post(
        "/drafts", data=draft_form(client, title=" ", description=""), follow_redirects=True
    )
    assert "Describe the incident first" in response.get_data(as_text=True)
    assert not (tmp_path / "d").exists()


def test_form_posted_after_the_session_ended_returns_to_the_search(client, people):
    response = client.post(
        "/feedback", data={"suggestion_id": "sg_x", "used": "mail-quota", "back": "/?sid=sg_x"}
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/login?") and "reason=expired" in location
    sign_in_page = client.get(location).get_data(as_text=True)
    assert "Your session has ended" in sign_in_page
    assert 'name="next" value="/?sid=sg_x"' in sign_in_page


def test_incident_text_never_goes_into_an_address(client, people, indexed):
    sign_in(client)
    log_text = "ERROR 0x80070005 access denied at C:\\Windows\\Temp\\setup.log line 42\n" * 100
    response = search(client, title="Installer fails", description=log_text)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/\?sid=sg_[\w-]+", location), location
    page = client.get(location).get_data(as_text=True)
    # The search is shown again from its id alone: the text as typed and its results.
    assert 'value="Installer fails"' in page and "access denied at C:\\Windows" in page
    assert 'data-suggestion-id="' + location.split("=", 1)[1] + '"' in page
    assert "description=" not in page  # no link or form field carries the text in a URL


def test_a_link_with_text_in_its_address_fills_the_form_but_records_nothing(
    client, people, indexed
):
    sign_in(client)
    before = indexed.store().count_suggestions()
    response = client.get("/?title=vpn+drops&description=planted+by+another+site")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert (
        'value="vpn drops"' in page and "planted by another site" in page and "press Search" in page
    )
    assert "data-suggestion-id" not in page
    assert indexed.store().count_suggestions() == before
    # Pressing Search (a POST with the CSRF token) is what records it.
    assert (
        search(client, title="vpn drops", description="planted by another site").status_code == 303
    )
    assert indexed.store().count_suggestions() == before + 1


def test_a_search_by_id_is_shown_only_to_whoever_made_it(client, people, app):
    sign_in(client)
    location = search(client, description="mailbox full cannot send").headers["Location"]
    other = app.test_client()
    sign_in(other, "kim", "manager-password")
    page = other.get(location).get_data(as_text=True)
    assert "mailbox full cannot send" not in page and "not one of yours" in page


def test_expired_session_keeps_the_typed_text_in_the_sign_in_form(client, people):
    typed = {
        "title": "Installer fails",
        "description": "setup.log says 0x80070005 " * 300,
        "incident_id": "INC-77",
        "product": "",
        "back": "/",
    }
    response = client.post("/", data=typed)  # the session has ended: no cookie at all
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "Your session has ended" in page
    assert f'name="description" value="{typed["description"]}"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed_in = client.post(
        "/login", data=dict(typed, name="ana", password="agent-password", csrf_token=token)
    )
    assert signed_in.status_code == 303 and signed_in.headers["Location"].startswith("/?sid=")
    shown = client.get(signed_in.headers["Location"]).get_data(as_text=True)
    assert 'value="Installer fails"' in shown and 'value="INC-77"' in shown
    assert "setup.log says 0x80070005" in shown


def test_fix_shows_code_as_code(client, people, indexed, articles_copy):
    from kb.articles import scan_articles

    (articles_copy / "export.md").write_text(
        "---\nid: export-jobs\ntitle: Export jobs stuck\nstatus: validated\naudience: internal\n---\n\n"
        "## Symptoms\nexport jobs stuck in queued state\n\n"
        "## Resolution\nRun `export_jobs --retry {job_id}` with **$LEDGERLY_API_KEY** set:\n\n"
        '```bash\ncurl -X POST https://api/export_jobs/{job_id}/retry \\\n  -H "X-Key: $LEDGERLY_API_KEY"\n```\n'
    )
    indexed.store().upsert_articles([p.article for p in scan_articles(articles_copy).parsed])
    indexed.index_documents([("article", "export-jobs")])
    sign_in(client)
    page = search(client, description="export jobs stuck in queued state", follow_redirects=True)
    page = page.get_data(as_text=True)
    assert "<code>export_jobs --retry {job_id}</code>" in page
    assert (
        "<pre><code>curl -X POST https://api/export_jobs/{job_id}/retry \\\n"
        "  -H &#34;X-Key: $LEDGERLY_API_KEY&#34;</code></pre>"
    ) in page
    assert "bash curl" not in page and "exportjobs" not in page


def test_dashboard_needs_a_manager(client, people):
    sign_in(client)
    assert client.get("/dashboard").status_code == 403
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    sign_in(client, "kim", "manager-password")
    page = client.get("/dashboard?days=30").get_data(as_text=True)
    assert "Knowledge dashboard" in page and "<svg" in page and "Last 30 days" in page
    assert "<script>" not in page and " style=" not in page


def test_sign_in_is_throttled_per_name_and_per_address(client, people):
    for _ in range(5):
        assert sign_in(client, password="wrong-password").status_code == 401
    # The sixth try is refused before the password is checked, even the right one.
    locked = sign_in(client)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    # Another name from the same address is still served until the address limit.
    assert sign_in(client, name="kim", password="manager-password").status_code == 302
    # The count lives in the store, so another worker sees the same lock-out.
    assert people.sign_in_lockout(["user:ana"], limit=5, window=300) > 0


def test_sign_in_lockout_expires_and_a_success_clears_the_name(people):
    keys = ["user:zed"]
    for n in range(5):
        people.record_sign_in_failure(keys, window=300, now=1000.0 + n)
    assert people.sign_in_lockout(keys, limit=5, window=300, now=1010.0) == pytest.approx(290.0)
    assert people.sign_in_lockout(keys, limit=5, window=300, now=1301.0) == 0
    people.clear_sign_in_failures("user:zed")
    assert people.sign_in_lockout(keys, limit=5, window=300, now=1010.0) == 0


def test_drafts_go_to_the_data_home_with_opaque_names_and_a_daily_limit(
    client, people, app, config
):
    app.config["KB_CONFIG"] = app.config["KB_CONFIG"].with_overrides(drafts_per_person_per_day=2)
    sign_in(client)
    assert (
        client.post("/drafts", data=draft_form(client, title="Принтер не печатает")).status_code
        == 302
    )
    assert (
        client.post("/drafts", data=draft_form(client, title="Coffee machine")).status_code == 302
    )
    folder = config.home_path / "drafts"
    titles = sorted(
        re.search(r"^title: (.*)$", p.read_text(encoding="utf-8"), re.M).group(1)
        for p in folder.iterdir()
    )
    assert titles == ["Coffee machine", "Принтер не печатает"]
    third = client.post("/drafts", data=draft_form(client, title="Kettle"), follow_redirects=True)
    assert "in the last 24 hours" in third.get_data(as_text=True)
    assert len(list(folder.iterdir())) == 2


def _signed_in_cookie(client):
    sign_in(client)
    return client.get_cookie("kb_session").value


def _replayed(app, cookie):
    other = app.test_client()
    other.set_cookie("kb_session", cookie)
    return other.get("/")


def test_sign_out_ends_the_session_even_for_a_replayed_cookie(client, people, app):
    cookie = _signed_in_cookie(client)
    assert _replayed(app, cookie).status_code == 200
    client.post("/logout", data={"csrf_token": csrf(client, "/")})
    assert _replayed(app, cookie).status_code == 302  # back to sign-in


def test_new_password_role_or_disable_end_sessions(client, people, app):
    cookie = _signed_in_cookie(client)
    people.update_user("ana", password="another-password")
    assert _replayed(app, cookie).status_code == 302
    assert sign_in(client, password="another-password").status_code == 302
    cookie = client.get_cookie("kb_session").value
    people.update_user("ana", role="knowledge_manager")
    assert _replayed(app, cookie).status_code == 302
    cookie = _signed_in_cookie_with(client, "another-password")
    people.disable_user("ana")
    assert _replayed(app, cookie).status_code == 302
    assert sign_in(client, password="another-password").status_code == 401


def _signed_in_cookie_with(client, password):
    sign_in(client, password=password)
    return client.get_cookie("kb_session").value


def test_secure_cookie_setting(people, config, service):
    from web import create_app

    app = create_app(
        {"TESTING": True}, config=config.with_overrides(secure_cookies=True), service=service
    )
    client = app.test_client()
    response = sign_in(client)
    assert "Secure" in response.headers["Set-Cookie"]
