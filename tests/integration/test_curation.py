"""Knowledge managers in the browser: the article list, the editor, the review queue and
agents' flags, with the rules of `kb articles` (lint, the file as source of truth)."""

import re
from pathlib import Path

import pytest

from kb.articles import render_markdown, scan_articles
from kb.stale import stale_articles


@pytest.fixture
def km_app(indexed, config, articles_copy):
    """The app over a copy of the test articles (the files the editor writes back)."""
    from web import create_app

    store = indexed.store()
    store.upsert_articles(
        [p.article for p in scan_articles(articles_copy).parsed], changed_by="import"
    )
    store.create_user("ana", "agent", "agent-password")
    store.create_user("kim", "knowledge_manager", "manager-password")
    store.create_user("lee", "knowledge_manager", "manager-password")
    cfg = config.with_overrides(articles_dir=str(articles_copy))
    return create_app({"TESTING": True}, config=cfg, service=indexed)


def page_csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def signed_in(app, name="kim", password="manager-password"):
    client = app.test_client()
    token = page_csrf(client)
    assert (
        client.post(
            "/login", data={"name": name, "password": password, "csrf_token": token}
        ).status_code
        == 302
    )
    return client


def editor(client, article_id):
    page = client.get(f"/manage/articles/{article_id}/edit").get_data(as_text=True)
    base = re.search(r'name="base_hash" value="([0-9a-f]+)"', page).group(1)
    text = re.search(r'<textarea id="editor-text"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return base, unescape(text), token


def unescape(html):
    return (
        html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", '"')
        .replace("&#39;", "'")
        .replace("&quot;", '"')
        .replace("&amp;", "&")
    )


def test_only_managers_open_the_pages(km_app):
    agent = signed_in(km_app, "ana", "agent-password")
    for path in ("/manage/articles", "/manage/review", "/manage/articles/mail-quota/edit"):
        assert agent.get(path).status_code == 403
    manager = signed_in(km_app)
    for path in (
        "/manage/articles",
        "/manage/review",
        "/manage/articles/mail-quota/edit",
        "/manage/articles/mail-quota/history",
    ):
        assert manager.get(path).status_code == 200


def test_the_list_filters_by_text_product_category_state_owner_and_review_date(km_app, indexed):
    client = signed_in(km_app)
    everything = client.get("/manage/articles").get_data(as_text=True)
    listed = set(re.findall(r'<tr data-article-id="([^"]+)"', everything))
    assert listed == {a.id for a in indexed.store().iter_articles()}
    articles = {a.id: a for a in indexed.store().iter_articles()}
    some = articles["net-vpn-drops"]

    def ids(**query):
        page = client.get("/manage/articles", query_string=query).get_data(as_text=True)
        return set(re.findall(r'<tr data-article-id="([^"]+)"', page))

    assert ids(text="VPN") == {
        i
        for i, a in articles.items()
        if "vpn" in (a.id + a.title + " ".join(a.tags) + a.body).lower()
    }
    assert "net-vpn-drops" in ids(text="vpn") and "mail-quota" not in ids(text="vpn")
    if some.product:
        assert ids(product=some.product.upper()) == {
            i for i, a in articles.items() if a.product.lower() == some.product.lower()
        }
    assert ids(state="validated") == {i for i, a in articles.items() if a.status == "validated"}
    assert ids(state="draft") == {i for i, a in articles.items() if a.status == "draft"}
    owners = {a.owner for a in articles.values() if a.owner}
    for owner in owners:
        assert ids(owner=owner) == {
            i for i, a in articles.items() if owner.lower() in a.owner.lower()
        }
    dates = sorted(a.review_by for a in articles.values() if a.review_by)
    assert ids(review_before=dates[0]) == {
        i for i, a in articles.items() if a.review_by and a.review_by <= dates[0]
    }
    categories = {a.category for a in articles.values() if a.category}
    for category in categories:
        assert ids(category=category) == {i for i, a in articles.items() if a.category == category}
    assert ids(text="no-such-words-anywhere") == set()


def test_an_edit_writes_the_file_stores_a_version_and_shows_the_diff(
    km_app, indexed, articles_copy
):
    client = signed_in(km_app)
    base, text, token = editor(client, "mail-quota")
    assert text == (articles_copy / "mail-quota.md").read_text()
    edited = text.replace(
        "## Resolution\n", "## Resolution\nFirst archive old mail to a local folder.\n\n", 1
    )
    response = client.post(
        "/manage/articles/mail-quota/edit",
        data={"text": edited, "base_hash": base, "csrf_token": token},
    )
    assert response.status_code == 303 and response.headers["Location"].endswith(
        "/manage/articles/mail-quota/history"
    )
    assert (articles_copy / "mail-quota.md").read_text() == edited
    store = indexed.store()
    assert "First archive old mail" in store.get_article("mail-quota").body
    versions = store.article_versions("mail-quota")
    assert versions[-1]["changed_by"] == "kim" and len(versions) >= 2
    history = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "+First archive old mail to a local folder." in history
    entries = [
        e for e in store.audit_entries(action="article edit") if e["target"] == "article:mail-quota"
    ]
    assert entries and entries[0]["actor"] == "session:kim"
    # Searchable at once with the new text.
    results = (
        indexed.suggester().suggest(store, _request("archive old mail to a local folder")).results
    )
    assert results and results[0].id == "mail-quota"


def _request(text):
    from search.ranking import Viewer
    from search.suggester import SuggestRequest

    return SuggestRequest(title="", description=text, k=3, viewer=Viewer(include_drafts=True))


def test_a_concurrent_edit_is_refused_with_both_texts_and_never_overwrites(km_app, articles_copy):
    kim, lee = signed_in(km_app), signed_in(km_app, "lee")
    base_kim, text, token_kim = editor(kim, "mail-quota")
    base_lee, _, token_lee = editor(lee, "mail-quota")
    assert base_kim == base_lee
    mine = text.replace("## Cause\n", "## Cause\nKim's cause.\n\n", 1)
    theirs = text.replace("## Cause\n", "## Cause\nLee's cause.\n\n", 1)
    assert (
        kim.post(
            "/manage/articles/mail-quota/edit",
            data={"text": mine, "base_hash": base_kim, "csrf_token": token_kim},
        ).status_code
        == 303
    )
    refused = lee.post(
        "/manage/articles/mail-quota/edit",
        data={"text": theirs, "base_hash": base_lee, "csrf_token": token_lee},
    )
    assert refused.status_code == 409
    page = refused.get_data(as_text=True)
    assert "changed since you opened it" in page and "nothing was saved" in page
    assert "Kim&#39;s cause." in page and "Lee&#39;s cause." in page  # both texts shown
    assert (articles_copy / "mail-quota.md").read_text() == mine  # Kim's edit stands
    # Saving again after seeing both is a deliberate choice, based on the text now on disk.
    new_base = re.search(r'name="base_hash" value="([0-9a-f]+)"', page).group(1)
    assert (
        lee.post(
            "/manage/articles/mail-quota/edit",
            data={"text": theirs, "base_hash": new_base, "csrf_token": token_lee},
        ).status_code
        == 303
    )
    assert (articles_copy / "mail-quota.md").read_text() == theirs


def test_the_editor_refuses_lint_errors_and_state_changes(km_app, articles_copy):
    client = signed_in(km_app)
    before = (articles_copy / "mail-quota.md").read_text()
    base, text, token = editor(client, "mail-quota")
    broken = text.replace(
        "## Resolution\n", "## Resolution\nSee <b>this</b> and [x](//evil.example/a).\n\n", 1
    )
    refused = client.post(
        "/manage/articles/mail-quota/edit",
        data={"text": broken, "base_hash": base, "csrf_token": token},
    )
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert (
        "[raw-html]" in page and "[protocol-relative-link]" in page and "nothing was saved" in page
    )
    assert "See &lt;b&gt;this&lt;/b&gt;" in page  # the typed text is kept in the editor
    status = re.search(r"^status: (\w+)$", text, re.M).group(1)
    other = "draft" if status != "draft" else "validated"
    moved = text.replace(f"status: {status}", f"status: {other}", 1)
    refused = client.post(
        "/manage/articles/mail-quota/edit",
        data={"text": moved, "base_hash": base, "csrf_token": token},
    )
    assert refused.status_code == 400 and "review queue" in refused.get_data(as_text=True)
    without_csrf = client.post(
        "/manage/articles/mail-quota/edit", data={"text": text + "x\n", "base_hash": base}
    )
    assert without_csrf.status_code == 403
    assert (articles_copy / "mail-quota.md").read_text() == before


def test_the_preview_uses_the_article_renderer_and_needs_csrf(km_app):
    client = signed_in(km_app)
    token = page_csrf(client, "/manage/articles")
    text = "---\nid: x\n---\n\n## Steps\nRun `ipconfig /flushdns` <script>alert(1)</script> [p](//evil.example/x)\n"
    assert client.post("/manage/preview", json={"text": text}).status_code == 403
    response = client.post("/manage/preview", json={"text": text}, headers={"X-CSRF-Token": token})
    body = "## Steps\nRun `ipconfig /flushdns` <script>alert(1)</script> [p](//evil.example/x)\n"
    assert response.status_code == 200 and response.get_json()["html"] == render_markdown(body)
    assert "<script>" not in response.get_json()["html"]
    # With the article's id, lint's problems come too, naming the file only.
    _, text, _ = editor(client, "mail-quota")
    response = client.post(
        "/manage/preview",
        json={"text": text.replace("## Cause\n", "## Cause\n<i>x</i>\n", 1), "id": "mail-quota"},
        headers={"X-CSRF-Token": token},
    )
    problems = response.get_json()["problems"]
    assert {p["code"] for p in problems if p["severity"] == "error"} == {"raw-html"}
    assert all(p["path"] == "mail-quota.md" for p in problems)


def test_a_draft_goes_through_the_review_queue_with_lint_at_each_step(
    km_app, indexed, articles_copy
):
    client = signed_in(km_app)
    token = page_csrf(client, "/manage/review")
    created = client.post(
        "/drafts",
        data={
            "title": "Printer shows offline after driver update",
            "description": "The printer went offline after the update.",
            "csrf_token": token,
            "back": "/",
        },
    )
    assert created.status_code == 302
    draft = next(
        a for a in indexed.store().iter_articles() if a.title.startswith("Printer shows offline")
    )
    queue = client.get("/manage/review").get_data(as_text=True)
    assert f'data-article-id="{draft.id}"' in queue
    # Cause and resolution are still empty: lint refuses a draft that is sent for review.
    refused = client.post(
        f"/manage/articles/{draft.id}/state", data={"state": "not_validated", "csrf_token": token}
    )
    assert refused.status_code == 422 and "[empty-section]" in refused.get_data(as_text=True)
    assert indexed.store().get_article(draft.id).status == "draft"
    # Skipping a step is refused too.
    skipped = client.post(
        f"/manage/articles/{draft.id}/state", data={"state": "validated", "csrf_token": token}
    )
    assert skipped.status_code == 400
    base, text, token = editor(client, draft.id)
    text = text.replace("## Cause\n", "## Cause\nThe update reset the printer's port.\n", 1)
    text = text.replace(
        "## Resolution\n", "## Resolution\nSet the port back to the printer's address.\n", 1
    )
    text = text.replace("## Applies to\n", "## Applies to\n- Office printers\n", 1)
    assert (
        client.post(
            f"/manage/articles/{draft.id}/edit",
            data={"text": text, "base_hash": base, "csrf_token": token},
        ).status_code
        == 303
    )
    for step in ("not_validated", "validated"):
        response = client.post(
            f"/manage/articles/{draft.id}/state", data={"state": step, "csrf_token": token}
        )
        assert response.status_code == 303, response.get_data(as_text=True)
    path = indexed.store().get_article(draft.id).path
    assert re.search(r"^status: validated$", Path(path).read_text(), re.M)
    store = indexed.store()
    versions = store.article_versions(draft.id)
    assert [v["data"]["status"] for v in versions][-2:] == ["not_validated", "validated"]
    assert versions[-1]["changed_by"] == "kim"
    steps = [
        e["detail"]
        for e in store.audit_entries(action="article review")
        if e["target"] == f"article:{draft.id}"
    ]
    assert any(d.startswith("not_validated -> validated") for d in steps)
    assert any(d.startswith("draft -> not_validated") for d in steps)
    history = client.get(f"/manage/articles/{draft.id}/history").get_data(as_text=True)
    assert "-status: not_validated" in history and "+status: validated" in history


def test_agents_flag_an_article_and_the_flag_feeds_stale_and_the_dashboard(km_app, indexed):
    agent = signed_in(km_app, "ana", "agent-password")
    page = agent.get("/articles/mail-quota?partial=1").get_data(as_text=True)
    assert 'action="/articles/mail-quota/flags"' in page
    token = page_csrf(agent, "/")
    assert (
        agent.post(
            "/articles/mail-quota/flags",
            data={"kind": "outdated", "note": "The quota is 50 GB now"},
        ).status_code
        == 403
    )
    response = agent.post(
        "/articles/mail-quota/flags",
        data={
            "kind": "outdated",
            "note": "The quota is 50 GB now",
            "csrf_token": token,
            "back": "/",
        },
    )
    assert response.status_code == 303
    assert (
        agent.post(
            "/articles/mail-quota/flags", data={"kind": "bogus", "csrf_token": token}
        ).status_code
        == 400
    )
    store = indexed.store()
    flags = store.article_flags("mail-quota")
    assert [(f["kind"], f["agent"], f["note"]) for f in flags] == [
        ("outdated", "ana", "The quota is 50 GB now")
    ]
    stale = {row["id"]: row for row in stale_articles(store)}
    assert stale["mail-quota"]["flags"] == 1 and any(
        "flagged outdated x1" in r for r in stale["mail-quota"]["reasons"]
    )
    manager = signed_in(km_app)
    dashboard = manager.get("/dashboard").get_data(as_text=True)
    assert "flagged outdated x1" in dashboard
    assert re.search(
        r'id="open-flags".*mail-quota.*outdated.*ana.*The quota is 50 GB now', dashboard, re.S
    )
    listing = manager.get("/manage/articles").get_data(as_text=True)
    assert re.search(
        r'data-article-id="mail-quota".*?<strong class="flagged">1</strong>', listing, re.S
    )
    token = page_csrf(manager, "/manage/articles")
    assert (
        manager.post(
            "/manage/articles/mail-quota/flags/resolve", data={"csrf_token": token}
        ).status_code
        == 303
    )
    assert store.article_flags("mail-quota") == []
    assert all(
        row.get("flags", 0) == 0 for row in stale_articles(store) if row["id"] == "mail-quota"
    )


@pytest.mark.both_engines
def test_flags_in_the_store(indexed):
    from kb.errors import NotFoundError, ValidationError

    store = indexed.store()
    first = store.flag_article(
        "mail-quota", "wrong", "call me on +1 212 555 4616 or mail a.b@example.com", agent="ana"
    )
    assert (
        store.flag_article("mail-quota", "unclear", "step 3 is unclear", agent="ana") == first
    )  # replaced
    store.flag_article("mail-quota", "outdated", "", agent="bo")
    store.flag_article("net-vpn-drops", "outdated", "", agent="ana")
    assert store.open_flag_counts() == {
        "mail-quota": {"unclear": 1, "outdated": 1},
        "net-vpn-drops": {"outdated": 1},
    }
    with pytest.raises(ValidationError):
        store.flag_article("mail-quota", "boring", "", agent="ana")
    with pytest.raises(NotFoundError):
        store.flag_article("no-such-article", "wrong", "", agent="ana")
    assert store.resolve_article_flags("mail-quota", by="session:kim") == 2
    assert store.open_flag_counts() == {"net-vpn-drops": {"outdated": 1}}
    closed = store.article_flags("mail-quota", open_only=False)
    assert {f["resolved_by"] for f in closed} == {"session:kim"}
    # A new flag after the old ones were resolved is a new flag.
    assert store.flag_article("mail-quota", "wrong", "", agent="ana") != first
    assert [e["action"] for e in store.audit_entries() if e["target"] == "article:mail-quota"][
        :2
    ] == ["article flag", "article flags resolve"]


def test_flag_notes_are_redacted(indexed):
    store = indexed.store()
    store.flag_article(
        "mail-quota", "wrong", "mail a.b@example.com, password: hunter22", agent="ana"
    )
    note = store.article_flags("mail-quota")[0]["note"]
    assert "a.b@example.com" not in note and "hunter22" not in note
    store.flag_article("mail-quota", "wrong", "", agent="jo@example.com")
    assert "jo@example.com" not in {f["agent"] for f in store.article_flags("mail-quota")}


def test_the_api_flags_an_article_for_an_agent(indexed, client, auth):
    response = client.post(
        "/api/v1/articles/mail-quota/flags",
        headers=auth("agent"),
        json={"kind": "unclear", "note": "which quota?"},
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["kind"] == "unclear" and body["agent"] == "test-agent" and body["open_flags"] == 1
    # An integration flags for the agent it names.
    response = client.post(
        "/api/v1/articles/mail-quota/flags",
        headers=auth("integration"),
        json={"kind": "wrong", "agent": "agent7"},
    )
    assert response.status_code == 201 and response.get_json()["open_flags"] == 2
    assert (
        client.post(
            "/api/v1/articles/mail-quota/flags", headers=auth("agent"), json={"kind": "boring"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            "/api/v1/articles/nope/flags", headers=auth("agent"), json={"kind": "wrong"}
        ).status_code
        == 404
    )
    assert (
        client.post("/api/v1/articles/mail-quota/flags", json={"kind": "wrong"}).status_code == 401
    )
    drafts = [a.id for a in indexed.store().iter_articles() if a.status == "draft"]
    for draft in drafts:  # agents never see drafts, so they cannot flag them
        assert (
            client.post(
                f"/api/v1/articles/{draft}/flags", headers=auth("agent"), json={"kind": "wrong"}
            ).status_code
            == 404
        )
    kinds = {(f["agent"], f["kind"]) for f in indexed.store().article_flags("mail-quota")}
    assert kinds == {("test-agent", "unclear"), ("agent7", "wrong")}


def test_the_flag_form_returns_to_the_search_it_was_opened_from(km_app):
    agent = signed_in(km_app, "ana", "agent-password")

    def back(**headers):
        page = agent.get("/articles/mail-quota?partial=1", headers=headers).get_data(as_text=True)
        return re.search(r'name="back" value="([^"]*)"', page.split("flag-article", 1)[1]).group(1)

    assert back(Referer="http://localhost/?sid=sg_123") == "/?sid=sg_123"
    assert back(Referer="http://evil.example/?sid=sg_123") == "/"
    assert back() == "/"
    page = agent.get("/articles/mail-quota").get_data(as_text=True)
    assert re.search(r'name="back" value="/articles/mail-quota"', page)


def test_a_file_broken_by_hand_is_mended_in_the_editor_without_changing_its_state(
    km_app, indexed, articles_copy
):
    path = articles_copy / "mail-quota.md"
    good = path.read_text()
    status = indexed.store().get_article("mail-quota").status
    path.write_text(good.replace("status:", "status: [", 1))  # broken YAML
    client = signed_in(km_app)
    base, text, token = editor(client, "mail-quota")
    other = "draft" if status != "draft" else "validated"
    moved = good.replace(f"status: {status}", f"status: {other}", 1)
    refused = client.post(
        "/manage/articles/mail-quota/edit",
        data={"text": moved, "base_hash": base, "csrf_token": token},
    )
    assert refused.status_code == 400 and "review queue" in refused.get_data(as_text=True)
    mended = client.post(
        "/manage/articles/mail-quota/edit",
        data={"text": good, "base_hash": base, "csrf_token": token},
    )
    assert mended.status_code == 303 and path.read_text() == good
