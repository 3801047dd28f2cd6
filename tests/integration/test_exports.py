"""Ticket-system CSV exports (tests/data/exports) imported through `kb import incidents`."""

import json

import pytest
from click.testing import CliRunner

from kb.store import open_store
from scripts.cli import cli


@pytest.fixture
def run(home, monkeypatch):
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.setenv("KB_EMBED_BACKEND", "hashing")
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke


@pytest.fixture
def exports(data_dir):
    return data_dir / "exports"


def incidents(home):
    store = open_store(home)
    try:
        return {i.id: i for i in store.iter_incidents()}
    finally:
        store.close()


def test_servicenow_export(run, exports, home):
    result = run("import", "incidents", exports / "servicenow.csv", "--format", "servicenow")
    assert result.exit_code == 0 and "6 new" in result.output
    rows = incidents(home)
    vpn = rows["INC0041207"]
    assert (vpn.title, vpn.status, vpn.category, vpn.product, vpn.article_id) == (
        "VPN disconnects every few minutes from home", "closed", "Network", "Corporate VPN",
        "vpn-disconnects-frequently")
    assert vpn.resolution_code == "Solved (Permanently)" and vpn.resolution.startswith("Disabled Wi-Fi")
    assert (vpn.opened_at, vpn.resolved_at) == ("2026-10-05T08:14:22Z", "2026-10-05T11:02:40Z")
    mail = rows["INC0041215"]
    assert "I already deleted some large attachments" in mail.description  # multi-line cell
    assert mail.status == "resolved" and mail.article_id == ""  # `knowledge` is a flag, not an id
    assert rows["INC0041251"].status == "open" and not rows["INC0041251"].is_prior_resolution
    assert rows["INC0041256"].status == "closed"  # Canceled


def test_servicenow_knowledge_flag_is_never_an_article(run, exports, home, tmp_path):
    lines = (exports / "servicenow.csv").read_text().splitlines(keepends=True)
    # The standard incident table has no article column: drop the custom one.
    import csv
    import io

    rows = list(csv.reader(io.StringIO("".join(lines))))
    column = rows[0].index("u_knowledge_article")
    out = io.StringIO()
    csv.writer(out).writerows([r[:column] + r[column + 1:] for r in rows])
    plain = tmp_path / "plain.csv"
    plain.write_text(out.getvalue())
    assert run("import", "incidents", plain, "--format", "servicenow").exit_code == 0
    assert {i.article_id for i in incidents(home).values()} == {""}


def test_jira_export(run, exports, home):
    result = run("import", "incidents", exports / "jira.csv", "--format", "jira")
    assert result.exit_code == 0 and "4 new" in result.output
    rows = incidents(home)
    hook = rows["SUP-2181"]
    assert (hook.title, hook.status, hook.resolution_code, hook.article_id) == (
        "Webhook deliveries failing with 401", "resolved", "Done", "api-webhook-signature")
    assert hook.resolution.startswith("Customer had rotated their signing secret")
    assert (hook.opened_at, hook.resolved_at) == ("2026-11-03T09:12:00Z", "2026-11-03T14:38:00Z")
    # Jira repeats a column per component: the first filled one is the product, whether
    # the others are empty (SUP-2181) or not (SUP-2190).
    assert hook.product == "Integrations" and rows["SUP-2190"].product == "API"
    # Jira Service Management's "Waiting for customer" is an open request.
    assert rows["SUP-2203"].status == "open" and rows["SUP-2203"].resolution == ""
    assert rows["SUP-2207"].status == "resolved"  # "Done"


def test_zendesk_export(run, exports, home):
    result = run("import", "incidents", exports / "zendesk.csv", "--format", "zendesk")
    assert result.exit_code == 0 and "4 new" in result.output
    rows = incidents(home)
    charge = rows["88412"]
    assert (charge.title, charge.status, charge.category) == (
        "Charged twice this month", "resolved", "Incident")
    # Custom fields carry their type in the header: "Product [list]", "Resolution notes [txt]".
    assert charge.product == "Ledgerly Billing" and charge.article_id == "billing-duplicate-charge"
    assert charge.resolution.startswith("Refunded the duplicate charge")
    assert (charge.opened_at, charge.resolved_at) == ("2026-11-02T09:14:51Z", "2026-11-02T11:39:58Z")
    assert rows["88420"].status == "closed" and rows["88433"].status == "open"  # Closed, Pending


def test_imported_exports_are_searchable(run, exports):
    for fmt in ("servicenow", "jira", "zendesk"):
        assert run("import", "incidents", exports / f"{fmt}.csv", "--format", fmt).exit_code == 0
    assert run("index").exit_code == 0
    body = json.loads(run("search", "my card was charged twice for the subscription", "--json").output)
    assert body["results"][0]["id"] == "88412"
    body = json.loads(run("search", "webhooks rejected with 401 after secret rotation", "--json").output)
    assert body["results"][0]["id"] == "SUP-2181"


def test_missing_columns_name_them_and_the_map_option(run, exports, tmp_path, home):
    text = (exports / "jira.csv").read_text().replace("Issue key,", "Key of issue,", 1)
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(text)
    result = run("import", "incidents", renamed, "--format", "jira")
    assert result.exit_code == 1
    assert "missing columns for --format jira: 'issue key' or 'key' (id)" in result.output
    assert "--map COLUMN=FIELD" in result.output and len(result.output.strip().splitlines()) == 1
    assert incidents(home) == {}
    result = run("import", "incidents", renamed, "--format", "jira", "--map", "Key of issue=id")
    assert result.exit_code == 0 and "4 new" in result.output
    result = run("import", "incidents", exports / "zendesk.csv", "--format", "servicenow")
    assert result.exit_code == 1 and "'number' (id)" in result.output
