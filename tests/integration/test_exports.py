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
        "VPN disconnects every few minutes from home",
        "closed",
        "Network",
        "Corporate VPN",
        "vpn-disconnects-frequently",
    )
    assert vpn.resolution_code == "Solved (Permanently)" and vpn.resolution.startswith(
        "Disabled Wi-Fi"
    )
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
    csv.writer(out).writerows([r[:column] + r[column + 1 :] for r in rows])
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
        "Webhook deliveries failing with 401",
        "resolved",
        "Done",
        "api-webhook-signature",
    )
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
        "Charged twice this month",
        "resolved",
        "Incident",
    )
    # Custom fields carry their type in the header: "Product [list]", "Resolution notes [txt]".
    assert charge.product == "Ledgerly Billing" and charge.article_id == "billing-duplicate-charge"
    assert charge.resolution.startswith("Refunded the duplicate charge")
    assert (charge.opened_at, charge.resolved_at) == (
        "2026-11-02T09:14:51Z",
        "2026-11-02T11:39:58Z",
    )
    assert rows["88420"].status == "closed" and rows["88433"].status == "open"  # Closed, Pending


def test_imported_exports_are_searchable(run, exports):
    for fmt in ("servicenow", "jira", "zendesk"):
        assert run("import", "incidents", exports / f"{fmt}.csv", "--format", fmt).exit_code == 0
    assert run("index").exit_code == 0
    body = json.loads(
        run("search", "my card was charged twice for the subscription", "--json").output
    )
    assert body["results"][0]["id"] == "88412"
    body = json.loads(
        run("search", "webhooks rejected with 401 after secret rotation", "--json").output
    )
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


def test_zendesk_export_with_comments(run, exports, home):
    result = run("import", "incidents", exports / "zendesk-comments.json", "--format", "zendesk")
    assert result.exit_code == 0 and "4 new" in result.output
    rows = incidents(home)
    # The agent's last public answer; not the internal note after it, nor the requester's thanks.
    assert rows["91001"].resolution.startswith("Cleared the stuck render job")
    assert rows["91001"].is_prior_resolution
    assert rows["91002"].resolution.startswith("Your phone clock was 3 minutes off")  # plain_body
    assert rows["91003"].resolution == ""  # still pending: its comment is no resolution
    assert "2 resolution(s) read from the last public agent comment" in result.output
    # Solved with only an internal note: stored, but it can never be suggested, and the import says so.
    assert not rows["91004"].is_prior_resolution
    assert (
        "warning: 1 of 3 resolved or closed incidents have no resolution text and can never be suggested "
        "(91004)"
    ) in result.output
    assert "no last public agent comment was found" in result.output
    assert "--map 'COLUMN=resolution'" in result.output


def test_jira_export_with_the_resolution_in_comments(run, exports, home):
    result = run("import", "incidents", exports / "jira-comments.csv", "--format", "jira")
    assert result.exit_code == 0 and "4 new" in result.output
    rows = incidents(home)
    sso = rows["OPS-410"]
    # The comment made at resolution, not the one before or the thanks after it.
    assert sso.resolution.startswith("The IdP certificate had rolled over")
    assert sso.resolution_code == "Done" and sso.is_prior_resolution
    assert rows["OPS-415"].resolution.startswith("Restarted the stuck indexing consumer")
    assert rows["OPS-420"].resolution == ""  # in progress
    # "Won't Do" is the resolution's name, never its text.
    assert rows["OPS-425"].resolution == "" and rows["OPS-425"].resolution_code == "Won't Do"
    assert "1 of 3 resolved or closed incidents have no resolution text" in result.output
    assert "(OPS-425)" in result.output


def test_jira_rest_json_is_read_too(run, tmp_path, home):
    issue = {
        "key": "OPS-9",
        "fields": {
            "summary": "Queue stuck",
            "description": {
                "type": "doc",
                "content": [
                    {
                        "type": "paragraph",
                        "content": [{"type": "text", "text": "Jobs stay queued."}],
                    }
                ],
            },
            "status": {"name": "Done"},
            "resolution": {"name": "Fixed"},
            "issuetype": {"name": "Incident"},
            "components": [{"name": "Workers"}],
            "created": "2026-11-03T09:00:00.000+0000",
            "resolutiondate": "2026-11-03T10:00:00.000+0000",
            "comment": {
                "comments": [
                    {"created": "2026-11-03T09:59:00.000+0000", "body": "Restarted the workers."}
                ]
            },
        },
    }
    path = tmp_path / "jira.json"
    path.write_text(json.dumps([issue]))
    assert run("import", "incidents", path, "--format", "jira").exit_code == 0
    row = incidents(home)["OPS-9"]
    assert (
        row.title,
        row.description,
        row.status,
        row.product,
        row.category,
        row.resolution_code,
    ) == ("Queue stuck", "Jobs stay queued.", "resolved", "Workers", "Incident", "Fixed")
    assert row.resolution == "Restarted the workers." and row.resolved_at == "2026-11-03T10:00:00Z"


def test_semicolon_csv_with_day_first_dates(run, exports, home):
    result = run("import", "incidents", exports / "semicolon.csv")
    assert result.exit_code == 0 and "3 new" in result.output, result.output
    assert "Read as ';'-separated" in result.output
    rows = incidents(home)
    charge = rows["EU-1"]
    assert charge.description == "Charger LED off; battery at 0%"  # a quoted semicolon stays text
    assert (charge.opened_at, charge.resolved_at) == (
        "2026-10-30T09:12:00Z",
        "2026-10-31T14:05:00Z",
    )
    assert rows["EU-2"].opened_at == "2026-11-04T10:00:00Z"  # day first for the whole file
    # Group is where the ticket went, never the product; spellings of one product are one.
    assert charge.assignment_group == "Field Services" and rows["EU-3"].assignment_group == "Desk"
    assert {r.product for r in rows.values()} == {"Laptops"}
    assert {r.category for r in rows.values()} == {"Hardware"}
    assert rows["EU-3"].description == 'Fan runs at full speed, "even idle"'


def test_names_follow_the_spelling_already_in_the_store(run, exports, home, tmp_path):
    first = tmp_path / "first.csv"
    first.write_text("id,title,resolution,status,product\nA-1,one,fixed,resolved,Laptop\n")
    assert run("import", "incidents", first).exit_code == 0
    assert run("import", "incidents", exports / "semicolon.csv").exit_code == 0
    assert {r.product for r in incidents(home).values()} == {"Laptop"}


def test_zendesk_group_is_the_assignment_group_not_the_product(run, exports, home):
    assert run("import", "incidents", exports / "zendesk.csv", "--format", "zendesk").exit_code == 0
    rows = incidents(home)
    assert (
        rows["88412"].assignment_group == "Billing" and rows["88412"].product == "Ledgerly Billing"
    )
    text = (exports / "zendesk.csv").read_text().replace("Product [list]", "Area [list]")
    plain = home / "no-product.csv"
    plain.write_text(text)
    assert run("import", "incidents", plain, "--format", "zendesk").exit_code == 0
    assert incidents(home)["88412"].product == ""  # not "Billing" from the Group column


def test_an_unterminated_quote_imports_nothing(run, tmp_path, home):
    rows = ["id,title,description,resolution,status"] + [
        f"R-{n},title {n},text {n},fixed {n},resolved" for n in range(1, 1001)
    ]
    rows[6] = 'R-6,"title 6 with an open quote,text 6,fixed 6,resolved'
    path = tmp_path / "open-quote.csv"
    path.write_text("\n".join(rows) + "\n")
    result = run("import", "incidents", path)
    assert result.exit_code == 1
    assert (
        f"{path}:7: invalid CSV: a quoted cell opened in the record starting on line 7 is never closed"
        in (result.output)
    )
    assert "nothing was imported" in result.output
    assert incidents(home) == {}


def test_date_format_option(run, tmp_path, home):
    path = tmp_path / "dates.csv"
    path.write_text("id,title,opened_at\nD-1,a,03/04/2026 10:00\n")
    result = run("import", "incidents", path)
    assert "could be day first or month first" in result.output
    assert incidents(home)["D-1"].opened_at == "2026-03-04T10:00:00Z"
    result = run("import", "incidents", path, "--date-format", "day-first")
    assert result.exit_code == 0 and "could be" not in result.output
    assert incidents(home)["D-1"].opened_at == "2026-04-03T10:00:00Z"
