"""The agent's page in a real browser: Playwright drives Debian's chromium against the app
served on a loopback port (hashing embedder, the small test knowledge base).

Skipped when /usr/bin/chromium is missing (`bash scripts/install-browser.sh` installs it;
`make test` does). Never downloads a browser.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexer.embedders import HashingEmbedder
from kb.app.outcomes import EventSender
from kb.app.service import Service
from kb.config import load_config
from tests.conftest import DATA, REPO, load_test_data
from tests.helpers import TicketReceiver

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--headless",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"
PASSWORDS = {"ana": "agent-password", "kim": "manager-password"}
EVENTS_SECRET = "browser-events-secret"

CODE_ARTICLE = """---
id: export-jobs
title: Ledger export jobs stuck in queued
status: validated
audience: internal
product: Ledgerly
---

## Symptoms
Ledger export jobs stay queued for hours.

## Resolution
Run `export_jobs --retry {job_id}` with **$LEDGERLY_API_KEY** set, or call the API:

```bash
curl -X POST https://api.ledgerly.test/export_jobs/{job_id}/retry \\
  -H "X-Key: $LEDGERLY_API_KEY"
```
"""

EVIL_ARTICLE = """---
id: evil
title: Printer queue stuck with script
status: validated
audience: internal
product: Printing
---

## Symptoms
<script>window.__pwned = 1; alert("script ran")</script>
<img src="x" onerror="window.__pwned = 2">
[reset the spooler](javascript:window.__pwned=3)

## Resolution
Restart the spooler service.
"""

if not CHROMIUM.exists():
    pytest.skip(
        "/usr/bin/chromium is not installed (run: bash scripts/install-browser.sh)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Live:
    url: str
    service: Service
    articles: Path
    tickets: TicketReceiver

    def store(self):
        return self.service.new_store()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The app on a real HTTP server in a background thread, for this whole module."""
    from werkzeug.serving import make_server

    from web import create_app

    root = tmp_path_factory.mktemp("browser")
    articles = root / "articles"
    shutil.copytree(DATA / "articles", articles)
    (articles / "evil.md").write_text(EVIL_ARTICLE)
    (articles / "export-jobs.md").write_text(CODE_ARTICLE)
    tickets = TicketReceiver(EVENTS_SECRET)  # the ticket system's end of "Used this"
    config = load_config(
        environ={},
        home=str(root / "home"),
        embed_backend="hashing",
        articles_dir=str(articles),
        drafts_dir=str(articles),
        events_url=tickets.url,
        events_secret=EVENTS_SECRET,
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
    request_log.setLevel(logging.WARNING)  # one line per request would drown a failure
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sender = EventSender(service, every_s=0.1).start()
    yield Live(f"http://127.0.0.1:{server.server_port}", service, articles, tickets)
    sender.stop()
    tickets.close()
    server.shutdown()
    thread.join(timeout=10)
    service.close()
    request_log.setLevel(level)


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


def sign_in(page, live: Live, name: str = "ana", path: str = "/"):
    page.goto(live.url + path)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORDS[name])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))
    return page


def watch(page):
    """Record dialogs, console errors and every URL the page asks for."""
    page.dialogs, page.console_errors, page.requested = [], [], []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
    page.on("request", lambda request: page.requested.append(request.url))
    return page


@pytest.fixture
def agent_page(context, live):
    return sign_in(watch(context.new_page()), live, "ana")


def type_incident(page, title: str = "", description: str = ""):
    if title:
        page.get_by_label("Title").fill(title)
    page.locator("#description").fill(description)


def first_result(page):
    return page.locator("#results .result").first


def suggestion_id(page) -> str:
    return page.locator("#results").get_attribute("data-suggestion-id")


def feedback_events(live: Live, sid: str) -> list[dict]:
    store = live.store()
    try:
        return list(
            store.db["feedback_events"].rows_where("suggestion_id = ?", [sid], order_by="id")
        )
    finally:
        store.close()


def feedback_rows(live: Live, sid: str) -> list[dict]:
    store = live.store()
    try:
        return store.feedback_for(sid)
    finally:
        store.close()


def test_sign_in_then_results_update_as_you_type(agent_page, live):
    page = agent_page
    expect = sync_api.expect
    expect(page.locator(".guidance")).to_contain_text("Describe the incident")
    page.evaluate("window.__samePage = true")
    type_incident(page, "VPN drops", "my vpn keeps disconnecting every few minutes at home")
    expect(first_result(page)).to_have_attribute("data-id", "net-vpn-drops")
    top = first_result(page)
    expect(top.locator(".kind")).to_have_text("Article")
    # The browser tests' store is a handful of incidents: too little replay evidence for
    # a fitted number, so the top result shows a band and says why, never a made-up figure.
    expect(top.locator(".confidence")).to_contain_text(re.compile(r"(High|Medium) confidence"))
    expect(top.locator(".confidence")).to_contain_text("too little evidence in this knowledge base")
    expect(top.locator(".resolution")).to_contain_text("Fix:")
    expect(top.locator(".snippet mark").first).to_be_visible()
    expect(top.locator(".facts")).to_contain_text("Resolved 3 similar incidents")
    expect(top.locator(".facts")).to_contain_text("VPN / connectivity")
    expect(top.locator(".facts")).to_contain_text("Validated 2026-05-01")
    # A reload would show the same search: the address names it by id, never by its text.
    expect(page).to_have_url(re.compile(r"/\?sid=sg_[\w-]+$"))
    page.set_viewport_size({"width": 1280, "height": 1400})
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-page.png"), full_page=True)

    type_incident(page, "Mail", "mailbox is full and I cannot send email")
    expect(first_result(page)).to_have_attribute("data-id", "mail-quota")
    assert page.evaluate("window.__samePage") is True  # updated in place, never reloaded
    # Everything comes from the app itself, and nothing broke the Content-Security-Policy
    # (an inline script or style would show up here as a console error).
    assert all(url.startswith(live.url + "/") for url in page.requested), page.requested
    assert page.console_errors == []

    # 200% zoom: half the CSS pixels across; the layout reflows to one column.
    page.set_viewport_size({"width": 640, "height": 900})
    zoomed = page.context.browser.new_context(
        viewport={"width": 640, "height": 450},
        device_scale_factor=2,
        storage_state=page.context.storage_state(),
    )
    try:
        wide = zoomed.new_page()
        wide.goto(page.url)
        expect(first_result(wide)).to_have_attribute("data-id", "mail-quota")
        overflow = wide.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "the page scrolls sideways at 200% zoom"
        wide.screenshot(path=str(ARTIFACTS / "results-page-200.png"), full_page=True)
    finally:
        zoomed.close()


def test_empty_and_long_input(agent_page):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "", "vpn keeps disconnecting")
    expect(first_result(page)).to_be_visible()
    type_incident(page, "", "   ")
    expect(page.locator(".guidance")).to_contain_text("Describe the incident")
    expect(page.locator(".error, .flash-error")).to_have_count(0)
    page.locator("#description").fill("vpn drops " * 2600)  # 26,000 characters
    expect(page.locator("#notice")).to_contain_text("first 20,000 characters")
    expect(first_result(page)).to_have_attribute("data-id", "net-vpn-drops")


def test_open_article_in_place(agent_page):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "", "vpn keeps disconnecting")
    expect(first_result(page)).to_be_visible()
    page.evaluate("window.__samePage = true")
    first_result(page).locator("a.title").click()
    panel = page.locator("#article-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".panel-title")).to_have_text("VPN tunnel drops every few minutes")
    expect(panel.locator(".state")).to_have_text("Validated")
    expect(panel.locator(".meta")).to_contain_text("review by")
    expect(panel.locator(".article-body h2").first).to_be_visible()
    assert page.evaluate("window.__samePage") is True  # opened in place, no navigation
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()


def test_used_this_double_click_stores_once_and_can_change(agent_page, live):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "", "mailbox is full and I cannot send email")
    expect(first_result(page)).to_have_attribute("data-id", "mail-quota")
    sid = suggestion_id(page)
    first_result(page).get_by_role("button", name="Used this").dblclick()
    status = page.locator("#feedback-status")
    expect(status).to_contain_text("Recorded: you used “Mailbox is full and cannot send”")
    expect(first_result(page).get_by_role("button", name="Used this")).to_have_attribute(
        "aria-pressed", "true"
    )
    rows = feedback_rows(live, sid)
    assert [(r["agent"], r["outcome"], r["used_id"]) for r in rows] == [
        ("ana", "used", "mail-quota")
    ]
    assert len(feedback_events(live, sid)) == 1

    page.get_by_role("button", name="None helped").click()
    expect(status).to_contain_text("none of these helped")
    expect(status).to_contain_text("earlier choice is replaced")
    expect(first_result(page).get_by_role("button", name="Used this")).to_have_attribute(
        "aria-pressed", "false"
    )
    expect(page.get_by_role("button", name="Start a draft article")).to_be_visible()
    rows = feedback_rows(live, sid)
    assert [(r["outcome"], r["used_id"]) for r in rows] == [("none_helped", None)]
    assert [e["outcome"] for e in feedback_events(live, sid)] == ["used", "none_helped"]


def test_keyboard_shortcuts(agent_page, live):
    page = agent_page
    expect = sync_api.expect
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("/")
    expect(page.locator("#description")).to_be_focused()
    page.keyboard.type("vpn keeps disconnecting from home")
    expect(first_result(page)).to_have_attribute("data-id", "net-vpn-drops")
    sid = suggestion_id(page)
    page.keyboard.press("Escape")
    results = page.locator("#results .result")
    page.keyboard.press("ArrowDown")
    expect(results.nth(0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(results.nth(1)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(results.nth(0)).to_be_focused()
    page.keyboard.press("u")
    expect(page.locator("#feedback-status")).to_contain_text("you used")
    assert feedback_rows(live, sid)[0]["used_id"] == "net-vpn-drops"
    results.nth(0).focus()
    page.keyboard.press("Enter")
    expect(page.locator("#article-panel .panel-title")).to_have_text(
        "VPN tunnel drops every few minutes"
    )
    expect(page.locator("#article-panel .panel-title")).to_be_focused()


def test_dashboard_is_for_knowledge_managers_only(agent_page, browser, live):
    expect = sync_api.expect
    response = agent_page.goto(live.url + "/dashboard")
    assert response.status == 403
    expect(agent_page.locator("h1")).to_have_text("Not allowed")
    assert agent_page.get_by_role("link", name="Dashboard").count() == 0

    manager = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        kim = sign_in(watch(manager.new_page()), live, "kim")
        type_incident(kim, "", "mailbox is full and I cannot send email")
        first_result(kim).get_by_role("button", name="Used this").click()
        expect(kim.locator("#feedback-status")).to_contain_text("Recorded")
        kim.get_by_role("link", name="Dashboard").click()
        expect(kim.locator("h1")).to_have_text("Knowledge dashboard")
        for heading in (
            "Usage over time",
            "Top articles (Pareto)",
            "Knowledge gaps",
            "Stale articles",
        ):
            expect(kim.get_by_role("heading", name=heading)).to_be_visible()
        assert kim.locator("main svg").count() >= 4
        assert kim.locator("main svg script, main svg [style], main [onload]").count() == 0
        expect(kim.locator("table.data").first).to_contain_text("Mailbox is full and cannot send")
        kim.get_by_label("Window").select_option("30")
        kim.get_by_role("button", name="Show").click()
        expect(kim.locator(".meta").first).to_contain_text("Last 30 days")
        assert kim.console_errors == []
        ARTIFACTS.mkdir(exist_ok=True)
        kim.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    finally:
        manager.close()


def test_markdown_with_script_renders_inert(agent_page, live):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "Printer queue stuck", "printer queue stuck restart spooler")
    result = page.locator('#results .result[data-id="evil"]')
    expect(result).to_be_visible()
    result.locator("a.title").click()
    panel = page.locator("#article-panel")
    expect(panel.locator(".panel-title")).to_have_text("Printer queue stuck with script")
    expect(panel.locator(".article-body")).to_contain_text("<script>")  # shown as text
    assert panel.locator("script, img").count() == 0
    assert panel.locator("a[href^='javascript']").count() == 0
    panel.get_by_text("reset the spooler").click()
    page.goto(live.url + "/articles/evil")
    expect(page.locator("h1")).to_have_text("Printer queue stuck with script")
    page.get_by_text("reset the spooler").click()
    assert page.evaluate("window.__pwned") is None
    assert page.dialogs == []


def test_expired_session_keeps_typed_text(agent_page, live):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "VPN drops", "vpn keeps disconnecting")
    expect(first_result(page)).to_be_visible()
    page.context.clear_cookies()
    page.locator("#description").type(" at home every day")  # the search gets 401
    expect(page.locator(".notice")).to_contain_text("session has ended")
    assert "vpn" not in page.url.lower()  # the text travels in the sign-in form, not the address
    page.get_by_label("Name").fill("ana")
    page.get_by_label("Password").fill(PASSWORDS["ana"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#description")).to_have_value("vpn keeps disconnecting at home every day")
    expect(page.get_by_label("Title")).to_have_value("VPN drops")
    expect(first_result(page)).to_have_attribute("data-id", "net-vpn-drops")

    # A POST (recording the outcome) that fails with 401 also returns to the text.
    page.context.clear_cookies()
    first_result(page).get_by_role("button", name="Used this").click()
    expect(page.locator(".notice")).to_contain_text("session has ended")
    page.get_by_label("Name").fill("ana")
    page.get_by_label("Password").fill(PASSWORDS["ana"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#description")).to_have_value("vpn keeps disconnecting at home every day")


def test_no_good_match_starts_a_draft_agents_cannot_see(agent_page, browser, live):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "Coffee machine broken", "the coffee machine on floor 4 leaks water")
    expect(page.locator(".no-match")).to_contain_text("No good match")
    page.locator(".no-match").get_by_role("button", name="Start a draft article").click()
    expect(page.locator(".flash")).to_contain_text("saved for a knowledge manager")
    expect(page.locator("#description")).to_have_value("the coffee machine on floor 4 leaks water")
    [path] = [
        p
        for p in live.articles.glob("draft-*.md")
        if "title: Coffee machine broken" in p.read_text()
    ]
    text = path.read_text()
    assert "status: draft" in text and "> the coffee machine on floor 4 leaks water" in text
    draft_id = path.stem  # opaque: the typed title names no file and no id
    store = live.store()
    try:
        article = store.get_article(draft_id)
    finally:
        store.close()
    assert article.status == "draft" and article.owner == "ana"
    # Agents never see drafts, in search or by address.
    type_incident(page, "Coffee machine broken", "coffee machine leaks water")
    expect(first_result(page)).to_be_visible()
    assert page.locator(f'#results .result[data-id="{draft_id}"]').count() == 0
    assert page.goto(live.url + f"/articles/{draft_id}").status == 404

    manager = browser.new_context()
    try:
        kim = sign_in(manager.new_page(), live, "kim")
        type_incident(kim, "Coffee machine broken", "coffee machine leaks water")
        expect(kim.locator(f'#results .result[data-id="{draft_id}"]')).to_be_visible()
    finally:
        manager.close()


def test_plain_forms_without_javascript(browser, live):
    expect = sync_api.expect
    ctx = browser.new_context(java_script_enabled=False)
    try:
        page = sign_in(ctx.new_page(), live, "ana")
        page.get_by_label("Title").fill("Mail")
        page.locator("#description").fill("mailbox is full and I cannot send email")
        page.get_by_role("button", name="Search").click()
        expect(first_result(page)).to_have_attribute("data-id", "mail-quota")
        sid = suggestion_id(page)
        first_result(page).get_by_role("button", name="Used this").click()
        expect(page.locator(".flash")).to_contain_text("your choice is recorded")
        assert suggestion_id(page) == sid  # the same suggestion, with the choice shown
        expect(first_result(page).get_by_role("button", name="Used this")).to_have_attribute(
            "aria-pressed", "true"
        )
        page.get_by_role("button", name="None helped").click()
        expect(page.locator(".flash")).to_contain_text("Your choice is changed")
        expect(page.get_by_role("button", name="None helped")).to_have_attribute(
            "aria-pressed", "true"
        )
        assert [(r["outcome"], r["used_id"]) for r in feedback_rows(live, sid)] == [
            ("none_helped", None)
        ]
    finally:
        ctx.close()


LOG_PASTE = "\n".join(
    f"2026-11-30T09:{i % 60:02d}:11Z ERROR vpnagent[4121]: tunnel keepalive timeout peer=vpn-gw01 "
    f"code=0x{800 + i:04x} session=9f{i:03d}"
    for i in range(70)
)  # about 6 kB, as a pasted log would be


def test_pasted_log_stays_out_of_addresses_and_survives_a_reload(agent_page, browser, live):
    page = agent_page
    expect = sync_api.expect
    assert len(LOG_PASTE) > 6000
    type_incident(page, "VPN drops with keepalive errors", LOG_PASTE)
    expect(first_result(page)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/\?sid=sg_[\w-]+$"))
    page.reload()
    expect(page.locator("#description")).to_have_value(LOG_PASTE)
    expect(page.get_by_label("Title")).to_have_value("VPN drops with keepalive errors")
    expect(first_result(page)).to_be_visible()
    assert not [url for url in page.requested if "keepalive" in url or "ERROR" in url]

    # The same without JavaScript: the form is posted, and the answer is the search by id.
    ctx = browser.new_context(java_script_enabled=False)
    try:
        plain = sign_in(watch(ctx.new_page()), live, "ana")
        plain.get_by_label("Title").fill("VPN drops with keepalive errors")
        plain.locator("#description").fill(LOG_PASTE)
        plain.get_by_role("button", name="Search").click()
        expect(first_result(plain)).to_be_visible()
        expect(plain).to_have_url(re.compile(r"/\?sid=sg_[\w-]+$"))
        assert plain.reload().status == 200
        expect(plain.locator("#description")).to_have_value(LOG_PASTE)
        assert not [url for url in plain.requested if "keepalive" in url]
    finally:
        ctx.close()


def test_fix_shows_commands_as_code_exactly_as_written(agent_page):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "", "ledger export jobs stay queued for hours")
    result = page.locator('#results .result[data-id="export-jobs"]')
    expect(result).to_be_visible()
    fix = result.locator(".resolution")
    expect(fix.locator("code").first).to_have_text("export_jobs --retry {job_id}")
    block = fix.locator("pre code")
    expect(block).to_have_count(1)
    assert block.inner_text() == (
        "curl -X POST https://api.ledgerly.test/export_jobs/{job_id}/retry \\\n"
        '  -H "X-Key: $LEDGERLY_API_KEY"'
    )
    assert "bash" not in fix.inner_text() and "$LEDGERLY_API_KEY" in fix.inner_text()
    page.reload()  # the server draws the same markup
    fix = page.locator('#results .result[data-id="export-jobs"] .resolution')
    expect(fix.locator("pre code")).to_have_count(1)
    assert '-H "X-Key: $LEDGERLY_API_KEY"' in fix.locator("pre code").inner_text()


def in_view(page, locator) -> bool:
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def test_outcome_buttons_stay_in_reach_without_scrolling(context, live):
    page = sign_in(watch(context.new_page()), live, "ana")
    expect = sync_api.expect
    page.set_viewport_size({"width": 1280, "height": 720})
    type_incident(
        page, "", "vpn keeps disconnecting, email will not send and the printer queue is stuck"
    )
    expect(page.locator("#results .result")).to_have_count(5)
    list_box = page.locator("#results").bounding_box()
    assert list_box["y"] + list_box["height"] > 720  # the list is taller than the window
    assert page.evaluate("window.scrollY") == 0
    none = page.get_by_role("button", name="None helped")
    assert in_view(page, first_result(page).get_by_role("button", name="Used this"))
    assert in_view(page, none)
    # Read down to the last result: "None helped" is still in view, and it works there.
    page.locator("#results .result").last.scroll_into_view_if_needed()
    assert page.evaluate("window.scrollY") > 0
    assert in_view(page, none)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-scrolled.png"))
    none.click()
    expect(page.locator("#feedback-status")).to_contain_text("none of these helped")
    assert in_view(page, page.locator("#feedback-status"))


def test_article_opens_beside_the_list_and_closes_to_the_same_spot(context, live):
    page = sign_in(watch(context.new_page()), live, "ana")
    expect = sync_api.expect
    page.set_viewport_size({"width": 1280, "height": 720})
    type_incident(
        page, "", "vpn keeps disconnecting, email will not send and the printer queue is stuck"
    )
    results = page.locator("#results .result")
    expect(results).to_have_count(5)
    third = results.nth(2)
    third.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, 40)")
    before = third.bounding_box()
    scrolled = page.evaluate("window.scrollY")
    page.evaluate("window.__samePage = true")
    third.locator("a.title").click()
    panel = page.locator("#article-panel")
    expect(panel.locator(".panel-title")).to_be_visible()
    after = third.bounding_box()
    panel_box = panel.bounding_box()
    assert abs(after["y"] - before["y"]) <= 2, (before, after)  # the list did not jump
    assert panel_box["x"] >= after["x"] + after["width"] - 1  # beside the list, not below it
    assert 0 <= panel_box["y"] < 720 and in_view(page, panel.locator(".panel-title"))
    assert page.evaluate("window.__samePage") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "article-beside-list.png"))
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    closed = third.bounding_box()
    assert (
        abs(closed["y"] - before["y"]) <= 2 and abs(page.evaluate("window.scrollY") - scrolled) <= 2
    )
    expect(third).to_be_focused()


def test_page_shows_route_first_line_hint_and_a_possible_duplicate(agent_page, live):
    from datetime import UTC, datetime, timedelta

    from kb.models import Incident

    page = agent_page
    expect = sync_api.expect
    opened = (datetime.now(UTC) - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store = live.store()
    try:
        store.upsert_incidents(
            [
                Incident(
                    id="OPEN-77",
                    title="Mailbox is full and cannot send",
                    description="mailbox is full and I cannot send email",
                    status="open",
                    opened_at=opened,
                )
            ]
        )
    finally:
        store.close()
    type_incident(page, "", "mailbox is full and I cannot send email")
    expect(first_result(page)).to_be_visible()
    duplicate = page.locator(".duplicate")
    expect(duplicate).to_contain_text("Possible duplicate of OPEN-77")
    expect(duplicate).to_contain_text("25 minutes ago")
    expect(duplicate.get_by_role("link", name="OPEN-77")).to_have_attribute(
        "href", "/incidents/OPEN-77"
    )
    expect(page.locator(".triage")).to_contain_text("Route to:")
    assert page.console_errors == []
    page.reload()  # the server draws the same
    expect(page.locator(".duplicate")).to_contain_text("Possible duplicate of OPEN-77")


def test_used_this_copies_the_resolution_note_and_tells_the_ticket_system(context, live):
    from datetime import UTC, datetime

    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    page = sign_in(watch(context.new_page()), live, "ana")
    expect = sync_api.expect
    page.get_by_label("Incident id").fill("INC-4242")
    type_incident(page, "VPN drops", "my vpn keeps disconnecting every few minutes at home")
    top = first_result(page)
    expect(top).to_have_attribute("data-id", "net-vpn-drops")
    sid = suggestion_id(page)
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    top.get_by_role("button", name="Used this").click()
    status = page.locator("#feedback-status")
    expect(status).to_contain_text("The resolution note is copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    link = f"{live.url}/articles/net-vpn-drops"
    assert copied.startswith(
        f'Resolved with the knowledge article "VPN tunnel drops every few minutes" ({link}).'
    )
    assert "Steps:" in copied
    assert page.locator(".resolution-note-text").input_value() == copied
    # The ticket system hears of it from the background sender, signed.
    deadline = time.monotonic() + 10
    while (
        not any(p[3]["suggestion_id"] == sid for p in live.tickets.posts)
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    [(_, signed, headers, event)] = [p for p in live.tickets.posts if p[3]["suggestion_id"] == sid]
    assert signed and headers["X-KB-Event"] == "resolution_used"
    assert event["incident_id"] == "INC-4242" and event["agent"] == "ana"
    assert event["result"] == {
        "id": "net-vpn-drops",
        "kind": "article",
        "rank": 1,
        "title": "VPN tunnel drops every few minutes",
        "url": link,
    }
    assert event["resolution_note"] == copied and event["occurred_at"] >= started
    assert page.console_errors == []


def recorded_searches(live: Live, principal: str = "ana") -> int:
    store = live.store()
    try:
        return store.db.execute(
            "SELECT count(*) FROM suggestions WHERE principal = ?", [principal]
        ).fetchone()[0]
    finally:
        store.close()


def test_only_searches_acted_on_or_settled_are_recorded(agent_page, live):
    page = agent_page
    expect = sync_api.expect
    before = recorded_searches(live)
    description = page.locator("#description")
    description.click()
    shown = []
    for word in ("printer", " queue", " stuck", " on floor", " three"):
        description.press_sequentially(word, delay=20)
        page.wait_for_timeout(450)  # a typing pause: the results follow
        expect(page.locator("#search-state")).to_have_text("")
        if page.locator("#results").count():
            shown.append(suggestion_id(page))
    assert len(set(shown)) >= 3  # several searches were shown while typing...
    assert recorded_searches(live) == before  # ...and none of them recorded yet
    page.wait_for_timeout(4600)  # the agent stopped typing: the last one is kept
    assert recorded_searches(live) == before + 1
    assert live.store().get_suggestion(suggestion_id(page))["query"].endswith("floor three")
    description.press_sequentially(" again", delay=20)
    expect(page.locator("#results")).not_to_have_attribute("data-suggestion-id", shown[-1])
    sid = suggestion_id(page)
    first_result(page).get_by_role(
        "button", name="Used this"
    ).click()  # acting on it records it at once
    expect(page.locator("#feedback-status")).to_contain_text("Recorded: you used")
    assert recorded_searches(live) == before + 2 and feedback_rows(live, sid)[0]["agent"] == "ana"


def test_keyboard_focus_is_never_under_the_sticky_bar(context, live):
    page = sign_in(watch(context.new_page()), live, "ana")
    expect = sync_api.expect
    page.set_viewport_size({"width": 1280, "height": 600})
    type_incident(
        page, "", "vpn keeps disconnecting, email will not send and the printer queue is stuck"
    )
    results = page.locator("#results .result")
    expect(results).to_have_count(5)
    page.keyboard.press("Escape")
    bar = page.locator(".outcome-bar")

    def clear_of_bar(index):
        box, bar_box = results.nth(index).bounding_box(), bar.bounding_box()
        assert box["y"] >= bar_box["y"] + bar_box["height"] - 1, (index, box, bar_box)
        assert box["y"] < 600

    for index in range(5):
        page.keyboard.press("ArrowDown")
        expect(results.nth(index)).to_be_focused()
        clear_of_bar(index)
    for index in (3, 2, 1, 0):
        page.keyboard.press("ArrowUp")
        expect(results.nth(index)).to_be_focused()
        clear_of_bar(index)
    results.nth(4).locator("a.title").focus()
    page.keyboard.press("Shift+Tab")  # Tab backwards into the result above
    page.keyboard.press("Shift+Tab")
    focused = page.evaluate(
        "document.activeElement.closest('.result') && "
        "[...document.querySelectorAll('#results .result')].indexOf(document.activeElement.closest('.result'))"
    )
    clear_of_bar(focused)


def test_at_720_pixels_the_first_result_shows_while_typing(context, live):
    page = sign_in(watch(context.new_page()), live, "ana")
    expect = sync_api.expect
    page.set_viewport_size({"width": 720, "height": 640})
    page.locator("#description").click()
    page.keyboard.type("my vpn keeps disconnecting every few minutes at home", delay=5)
    top = first_result(page)
    expect(top).to_have_attribute("data-id", "net-vpn-drops")
    expect(page.locator("#description")).to_be_focused()
    assert page.evaluate("window.scrollY") == 0
    assert in_view(page, top.locator("a.title")) and in_view(
        page, top.get_by_role("button", name="Used this")
    )
    assert in_view(page, page.locator("#description"))
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-720.png"))


def test_the_opened_article_has_its_own_used_this(agent_page, live):
    page = agent_page
    expect = sync_api.expect
    type_incident(page, "", "mailbox is full and I cannot send email")
    expect(first_result(page)).to_have_attribute("data-id", "mail-quota")
    sid = suggestion_id(page)
    first_result(page).locator("a.title").click()
    panel = page.locator("#article-panel")
    expect(panel.locator(".panel-title")).to_be_visible()
    use = panel.get_by_role("button", name="Used this")
    expect(use).to_have_attribute("aria-pressed", "false")
    use.click()
    expect(use).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#feedback-status")).to_contain_text(
        "Recorded: you used “Mailbox is full and cannot send”"
    )
    expect(first_result(page).get_by_role("button", name="Used this")).to_have_attribute(
        "aria-pressed", "true"
    )
    assert [(r["outcome"], r["used_id"]) for r in feedback_rows(live, sid)] == [
        ("used", "mail-quota")
    ]
