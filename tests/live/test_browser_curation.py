"""Knowledge managers' pages and organisation sign-in in a real browser (Debian's chromium
driven by Playwright; skipped when it is missing, never downloaded)."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.embedders import HashingEmbedder
from kb.app.service import Service
from kb.config import load_config
from tests.conftest import DATA, load_test_data
from tests.live.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORDS,
    sign_in,
    sync_api,
    watch,
)
from tests.oidc_provider import Provider

pytestmark = pytest.mark.browser


@dataclass
class Live:
    url: str
    service: Service
    articles: Path

    def store(self):
        return self.service.new_store()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def provider():
    with Provider() as running:
        yield running


@pytest.fixture(scope="module")
def live(tmp_path_factory, provider):
    """The app on loopback over a copy of the test articles, with organisation sign-in."""
    from werkzeug.serving import make_server

    from web import create_app

    root = tmp_path_factory.mktemp("browser-km")
    articles = root / "articles"
    shutil.copytree(DATA / "articles", articles)
    config = load_config(
        environ={},
        home=str(root / "home"),
        embed_backend="hashing",
        articles_dir=str(articles),
        drafts_dir=str(articles),
        oidc_issuer=provider.issuer,
        oidc_client_id=provider.client_id,
        oidc_client_secret=provider.client_secret,
        oidc_roles="kb-curators=knowledge_manager,support=agent",
    )
    service = Service(config, embedder=HashingEmbedder())
    load_test_data(service, articles)
    service.index()
    store = service.store()
    store.create_user("ana", "agent", PASSWORDS["ana"])
    store.create_user("kim", "knowledge_manager", PASSWORDS["kim"])
    app = create_app({"TESTING": True}, config=config, service=service)
    request_log = logging.getLogger("werkzeug")
    level = request_log.level
    request_log.setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Live(f"http://127.0.0.1:{server.server_port}", service, articles)
    server.shutdown()
    thread.join(timeout=10)
    service.close()
    request_log.setLevel(level)


def stored(live: Live, article_id: str):
    store = live.store()
    try:
        return (
            store.get_article(article_id),
            store.article_versions(article_id),
            store.audit_entries(),
        )
    finally:
        store.close()


def test_a_draft_goes_to_validated_through_the_review_queue(context, live):
    expect = sync_api.expect
    page = sign_in(watch(context.new_page()), live, "kim")
    # A draft started from the search page when nothing fits.
    page.get_by_label("Title").fill("Badge reader rejects every card")
    page.locator("#description").fill(
        "the badge reader at the north door rejects every card since monday"
    )
    page.get_by_role("button", name="Start a draft article").click()
    expect(page.locator(".flash")).to_contain_text("Draft saved as")
    store = live.store()
    try:
        draft = next(
            a for a in store.iter_articles() if a.title == "Badge reader rejects every card"
        )
    finally:
        store.close()
    path = live.articles / f"{draft.id}.md"
    assert "status: draft" in path.read_text()

    page.get_by_role("link", name="Review", exact=True).click()
    item = page.locator(f'.queue-item[data-article-id="{draft.id}"]')
    expect(item).to_be_visible()
    # Lint refuses: cause, resolution and "applies to" are still empty.
    item.get_by_role("button", name="Send for review").click()
    expect(page.locator("#refused")).to_contain_text("cannot become not_validated")
    expect(page.locator("#lint-problems")).to_contain_text("section 'Cause' is empty")
    assert "status: draft" in path.read_text()

    # Complete it in the editor; the preview follows the typing, rendered as the page is.
    page.get_by_role("link", name="Edit the article").click()
    editor = page.locator("#editor-text")
    text = editor.input_value()
    text = text.replace(
        "## Cause\n", "## Cause\nThe card keys were rotated; the reader kept the old ones.\n", 1
    )
    text = text.replace(
        "## Resolution\n",
        "## Resolution\nPush the new keys with `badgectl sync --door north`.\n",
        1,
    )
    text = text.replace("## Applies to\n", "## Applies to\n- Door badge readers <b>north</b>\n", 1)
    editor.fill(text)
    preview = page.locator("#preview")
    expect(preview.locator("code")).to_have_text("badgectl sync --door north")
    expect(preview).to_contain_text("<b>north</b>")  # raw HTML stays text, as on the article page
    expect(page.locator("#live-problems")).to_contain_text("[raw-html]")  # lint, before saving
    # Raw HTML is a lint error: saving is refused and the text is kept.
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#lint-problems")).to_contain_text("raw HTML")
    assert "badgectl" not in path.read_text()
    editor = page.locator("#editor-text")
    editor.fill(editor.input_value().replace(" <b>north</b>", " (north door)"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text(f"Saved {draft.id}.md as version 2")
    expect(page.locator("pre.diff").first).to_contain_text(
        "+Push the new keys with `badgectl sync --door north`."
    )
    assert "badgectl sync --door north" in path.read_text()

    for button, state in (("Send for review", "not_validated"), ("Validate", "validated")):
        page.get_by_role("link", name="Review", exact=True).click()
        page.locator(f'.queue-item[data-article-id="{draft.id}"]').get_by_role(
            "button", name=button
        ).click()
        expect(page.locator(".flash")).to_contain_text(f"{draft.id}:")
        assert f"status: {state}" in path.read_text()
    expect(page.locator(f'.queue-item[data-article-id="{draft.id}"]')).to_have_count(0)

    article, versions, audit = stored(live, draft.id)
    assert article.status == "validated"
    assert [(v["data"]["status"], v["changed_by"]) for v in versions][-2:] == [
        ("not_validated", "kim"),
        ("validated", "kim"),
    ]
    assert any(
        e["action"] == "article review"
        and e["actor"] == "session:kim"
        and e["detail"].startswith("not_validated -> validated")
        for e in audit
    )
    page.goto(live.url + f"/manage/articles/{draft.id}/history")
    expect(page.locator(".version").first).to_contain_text("by kim")
    assert not [e for e in page.console_errors if "status of 422" not in e]  # the two refusals


def test_a_concurrent_edit_shows_both_texts(browser, live):
    expect = sync_api.expect
    first, second = browser.new_context(), browser.new_context()
    try:
        kim = sign_in(first.new_page(), live, "kim", "/manage/articles/mail-quota/edit")
        also = sign_in(second.new_page(), live, "kim", "/manage/articles/mail-quota/edit")
        for page, words in ((kim, "First archive old mail."), (also, "Ask for a bigger quota.")):
            editor = page.locator("#editor-text")
            editor.fill(
                editor.input_value().replace("## Resolution\n", f"## Resolution\n{words}\n\n", 1)
            )
        kim.get_by_role("button", name="Save").click()
        expect(kim.locator(".flash")).to_contain_text("Saved mail-quota.md")
        also.get_by_role("button", name="Save").click()
        expect(also.locator("#conflict")).to_contain_text("changed since you opened it")
        expect(also.locator("#conflict-current")).to_contain_text("First archive old mail.")
        expect(also.locator("#editor-text")).to_have_value(re.compile("Ask for a bigger quota."))
        text = (live.articles / "mail-quota.md").read_text()
        assert "First archive old mail." in text and "Ask for a bigger quota." not in text
    finally:
        first.close()
        second.close()


def test_an_agent_flags_an_article_and_the_manager_sees_it(browser, live):
    expect = sync_api.expect
    agent, manager = browser.new_context(), browser.new_context()
    try:
        ana = sign_in(agent.new_page(), live, "ana")
        ana.get_by_label("Title").fill("VPN drops")
        ana.locator("#description").fill("vpn keeps disconnecting every few minutes")
        ana.locator('#results .result[data-id="net-vpn-drops"] a.title').click()
        panel = ana.locator("#article-panel")
        panel.locator("summary", has_text="Flag this article").click()
        panel.get_by_label("Outdated").check()
        panel.get_by_label("Note").fill("The VPN client was replaced last month")
        panel.get_by_role("button", name="Send flag").click()
        expect(ana.locator(".flash")).to_contain_text("flagged for a knowledge manager")
        assert re.search(r"/\?sid=sg_", ana.url)  # back to the same search
        expect(ana.locator('#results .result[data-id="net-vpn-drops"]')).to_be_visible()
        kim = sign_in(manager.new_page(), live, "kim", "/manage/articles?text=vpn")
        expect(kim.locator('tr[data-article-id="net-vpn-drops"] .flagged')).to_have_text("1")
        kim.goto(live.url + "/dashboard")
        expect(kim.locator("body")).to_contain_text("flagged outdated x1")
    finally:
        agent.close()
        manager.close()


def test_sign_in_through_the_organisation(context, live, provider):
    expect = sync_api.expect
    provider.person = {"sub": "u-42", "preferred_username": "olga", "roles": ["kb-curators"]}
    page = context.new_page()
    page.goto(live.url + "/manage/review")
    page.get_by_role("link", name="Sign in with your organisation").click()
    page.wait_for_url(live.url + "/manage/review")
    expect(page.locator(".who")).to_have_text("olga (knowledge manager)")
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
