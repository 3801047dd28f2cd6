import json

import pytest

from kb.errors import RecordError
from kb.importers import read_incident_file, sample_incidents_path
from tests.helpers import write


def test_jsonl_json_and_csv_read_the_same_records(tmp_path):
    records = [
        {
            "id": "1",
            "title": "vpn",
            "description": "drops",
            "resolution": "fixed it",
            "status": "resolved",
            "resolved_at": "2026-01-02T10:00:00Z",
        },
        {"id": "2", "title": "mail", "description": "full", "resolution": "", "status": "open"},
    ]
    jsonl = write(tmp_path, "a.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    as_json = write(tmp_path, "a.json", json.dumps(records))
    csv_text = "id,title,description,resolution,status,resolved_at\n1,vpn,drops,fixed it,resolved,2026-01-02T10:00:00Z\n2,mail,full,,open,\n"
    as_csv = write(tmp_path, "a.csv", csv_text)
    results = [read_incident_file(p) for p in (jsonl, as_json, as_csv)]
    assert results[0] == results[1] == results[2]
    assert results[0][0].is_prior_resolution and not results[0][1].is_prior_resolution


@pytest.mark.parametrize(
    "name, text, expected",
    [
        (
            "bad.jsonl",
            '{"id": "1", "title": "ok"}\n{"id": "2", "title": \n',
            "bad.jsonl:2: invalid JSON",
        ),
        (
            "bad.jsonl",
            '{"id": "1", "title": "ok"}\n{"title": "no id"}\n',
            "bad.jsonl:2: missing required field 'id'",
        ),
        (
            "bad.jsonl",
            '{"id": "1", "title": "ok", "status": "pending-ish"}\n',
            "bad.jsonl:1: unknown status",
        ),
        (
            "bad.jsonl",
            '{"id": "1", "title": "ok", "opened_at": "yesterday"}\n',
            "bad.jsonl:1: field 'opened_at'",
        ),
        (
            "bad.jsonl",
            '{"id": "1", "title": "a"}\n{"id": "1", "title": "b"}\n',
            "bad.jsonl:2: duplicate id",
        ),
        ("bad.jsonl", "[1, 2]\n", "bad.jsonl:1: each record must be a JSON object"),
        ("bad.csv", "id,title\n1,ok\n2,ok,extra\n", "bad.csv:3: row has more cells"),
        ("bad.csv", "name,summary\nx,y\n", "missing columns"),
        ("bad.txt", "hello", "expected a .jsonl, .json or .csv file"),
    ],
)
def test_broken_files_name_the_line(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    with pytest.raises(RecordError) as info:
        read_incident_file(path)
    assert expected in str(info.value)


def test_servicenow_export_columns(tmp_path):
    text = (
        "number,short_description,description,close_notes,close_code,category,cmdb_ci,state,opened_at,resolved_at\n"
        "INC0010001,VPN drops,User says VPN drops,Disabled power saving,Solved (Permanently),Network,VPN,Resolved,"
        "2026-01-02 09:00:00,2026-01-02 10:00:00\n"
    )
    [incident] = read_incident_file(write(tmp_path, "snow.csv", text), fmt="servicenow")
    assert (
        incident.id,
        incident.title,
        incident.resolution,
        incident.product,
        incident.status,
    ) == ("INC0010001", "VPN drops", "Disabled power saving", "VPN", "resolved")
    assert incident.resolved_at == "2026-01-02T10:00:00Z"


def test_jira_export_columns_and_map_override(tmp_path):
    text = (
        "Issue key,Summary,Description,Resolution,Status,Resolved,Component/s,Fix notes\n"
        "OPS-7,Mail full,Quota hit,Fixed,Done,12/Mar/26 9:15 AM,Email,Enabled archive\n"
    )
    path = write(tmp_path, "jira.csv", text)
    [plain] = read_incident_file(path, fmt="jira")
    assert (plain.id, plain.resolution_code, plain.status, plain.product) == (
        "OPS-7",
        "Fixed",
        "resolved",
        "Email",
    )
    assert plain.resolved_at == "2026-03-12T09:15:00Z"
    [mapped] = read_incident_file(path, fmt="jira", overrides={"resolution": "Fix notes"})
    assert mapped.resolution == "Enabled archive"


def test_missing_columns_mention_map_option(tmp_path):
    path = write(tmp_path, "z.csv", "Ticket,Text\n1,hello\n")
    with pytest.raises(RecordError, match="--map"):
        read_incident_file(path, fmt="zendesk")


def test_sample_incidents_are_valid_and_rich():
    incidents = read_incident_file(sample_incidents_path())
    assert len(incidents) >= 300
    resolved = [i for i in incidents if i.is_prior_resolution]
    assert len(resolved) >= 300
    assert sum(1 for i in resolved if i.article_id) >= 200


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("2026-01-02T10:00:00Z", "2026-01-02T10:00:00Z"),
        ("2026-01-02t10:00:00.123456z", "2026-01-02T10:00:00Z"),
        ("2026-01-02T11:00:00+01:00", "2026-01-02T10:00:00Z"),
        # RFC 3339 allows a leap second; it is read as the second before.
        ("2016-12-31T23:59:60Z", "2016-12-31T23:59:59Z"),
        ("1990-12-31T15:59:60-08:00", "1990-12-31T23:59:59Z"),
        # Valid RFC 3339 text that lies outside what datetime holds once in UTC is clamped.
        ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00Z"),
        ("9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59Z"),
        # Years before 1000 keep their four digits.
        ("0999-06-01T00:00:00Z", "0999-06-01T00:00:00Z"),
        ("", ""),
        ("2026-13-01T00:00:00Z", None),
        ("yesterday", None),
    ],
)
def test_timestamps_are_normalised_to_utc(raw, expected):
    from kb.importers import normalise_datetime

    assert normalise_datetime(raw) == expected


# --- dialects, dates, comments, names ---------------------------------------------------------


def test_the_delimiter_is_sniffed_from_the_header():
    from kb.importers import sniff_delimiter

    assert sniff_delimiter("id;title;description\n1;a, b;c\n") == ";"
    assert sniff_delimiter('id,title\n1,"a; b"\n') == ","
    assert sniff_delimiter("id\ttitle\n") == "\t"
    assert sniff_delimiter("id\n1\n") == ","


@pytest.mark.parametrize(
    ("dates", "order", "warned"),
    [
        (["30/10/2026 09:12", "03/11/2026 10:00"], "day-first", False),
        (["10/30/2026 09:12", "03/11/2026 10:00"], "month-first", False),
        (["03/04/2026", "05/05/2026", "2026-01-01"], "auto", True),
        (["05/05/2026", "2026-01-01", "04/Nov/26 9:00 AM"], "auto", False),
    ],
)
def test_the_day_and_month_order_comes_from_the_file_and_ambiguity_is_said(dates, order, warned):
    from kb.importers import choose_date_order

    chosen, warnings = choose_date_order(dates)
    assert chosen == order and bool(warnings) == warned
    if warned:
        assert "'03/04/2026' could be day first or month first" in warnings[0]
        assert "--date-format day-first" in warnings[0]


def test_a_file_with_dates_in_both_orders_is_refused():
    from kb.importers import choose_date_order

    with pytest.raises(
        RecordError, match="both day first .*'31/01/2026'.* and month first .*'01/31/2026'"
    ):
        choose_date_order(["31/01/2026", "01/31/2026"])


def test_a_named_order_or_pattern_is_followed(tmp_path):
    from kb.importers import normalise_datetime, read_incident_report

    assert normalise_datetime("03/04/2026 21:05", "day-first") == "2026-04-03T21:05:00Z"
    assert normalise_datetime("03/04/2026 9:05 PM", "month-first") == "2026-03-04T21:05:00Z"
    assert normalise_datetime("31.12.26 14:05") == "2026-12-31T14:05:00Z"  # dots: day first
    assert normalise_datetime("2026|12|31", "%Y|%m|%d") == "2026-12-31T00:00:00Z"
    assert normalise_datetime("2026-12-31", "%Y|%m|%d") is None
    path = write(tmp_path, "a.csv", "id,title,opened_at\n1,a,03/04/2026\n")
    assert (
        read_incident_report(path, date_format="day-first").incidents[0].opened_at
        == "2026-04-03T00:00:00Z"
    )
    report = read_incident_report(path)
    assert (
        report.incidents[0].opened_at == "2026-03-04T00:00:00Z"
        and "could be day first" in report.warnings[0]
    )
    with pytest.raises(RecordError, match="--date-format must be one of"):
        read_incident_report(path, date_format="european")


def test_an_unterminated_quote_refuses_the_file_naming_the_line(tmp_path):
    rows = ["id,title,description"] + [f"{n},title {n},text {n}" for n in range(1, 1001)]
    rows[6] = '6,"title 6 with an open quote,text 6'
    path = write(tmp_path, "open.csv", "\n".join(rows) + "\n")
    with pytest.raises(RecordError) as caught:
        read_incident_file(path)
    message = str(caught.value)
    assert message.startswith(
        f"{path}:7: invalid CSV: a quoted cell opened in the record starting on line 7 "
        "is never closed"
    )
    rows.append('1001,"closes it",late')  # a later quote closes it, in the middle of a cell
    path = write(tmp_path, "open2.csv", "\n".join(rows) + "\n")
    with pytest.raises(
        RecordError,
        match=r"open2.csv:7: invalid CSV: a quote in the record starting on line 7 "
        r"is misplaced",
    ):
        read_incident_file(path)


def test_zendesk_takes_the_last_public_comment_not_by_the_requester():
    from kb.importers import zendesk_agent_comment

    ticket = {
        "requester_id": 1,
        "comments": [
            {"author_id": 1, "public": True, "body": "It is broken."},
            {"author_id": 9, "public": True, "body": "Restarted the worker; it works."},
            {"author_id": 9, "public": False, "body": "Internal note."},
            {"author_id": 1, "public": True, "body": "Thanks!"},
        ],
    }
    assert zendesk_agent_comment(ticket) == "Restarted the worker; it works."
    assert zendesk_agent_comment({"comments": [{"public": True, "body": "It is broken."}]}) == ""
    assert zendesk_agent_comment({"comments": "not a list"}) == ""


def test_jira_takes_the_comment_made_when_the_issue_was_resolved():
    from kb.importers import jira_resolution_comment

    comments = [
        ("03/Nov/26 10:01 AM", "Asked for a HAR file."),
        ("03/Nov/26 2:38 PM", "Uploaded the new certificate."),
        ("04/Nov/26 10:00 AM", "Customer confirmed, thanks!"),
    ]
    assert (
        jira_resolution_comment(comments, "03/Nov/26 2:38 PM", "auto")
        == "Uploaded the new certificate."
    )
    assert jira_resolution_comment(comments, "", "auto") == "Customer confirmed, thanks!"
    assert jira_resolution_comment(comments, "01/Nov/26 2:38 PM", "auto") == ""
    # The REST API's JSON: Atlassian Document Format bodies.
    from kb.importers import jira_comments

    body = {
        "type": "doc",
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Rebooted it."}]}],
    }
    issue = {
        "key": "A-1",
        "fields": {
            "comment": {"comments": [{"created": "2026-11-03T14:38:00.000+0000", "body": body}]}
        },
    }
    assert jira_comments(issue) == [("2026-11-03T14:38:00.000+0000", "Rebooted it.")]


def test_names_that_differ_in_case_spacing_or_plural_are_one():
    from kb.names import display_names, distinct_by_key, name_key

    assert name_key("Laptops") == name_key(" laptop ") == name_key("LAPTOP") == "laptop"
    assert name_key("Access") != name_key("Acces") and name_key("VPN / remote") == name_key(
        "vpn remote"
    )
    assert name_key("OS") == "os" and name_key("Windows") == "window"
    assert display_names(["laptop", "Laptops", "Laptops"])["laptop"] == "Laptops"  # the most common
    assert display_names(["laptop"], preferred=["Laptop"])["laptop"] == "Laptop"  # the one in use
    assert distinct_by_key(["Laptops", "laptop", "Printers", ""]) == ["Laptops", "Printers"]
