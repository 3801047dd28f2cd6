import json

import pytest

from kb.errors import RecordError
from kb.importers import read_incident_file, sample_incidents_path
from tests.helpers import write


def test_jsonl_json_and_csv_read_the_same_records(tmp_path):
    records = [
        {"id": "1", "title": "vpn", "description": "drops", "resolution": "fixed it", "status": "resolved",
         "resolved_at": "2026-01-02T10:00:00Z"},
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
        ("bad.jsonl", '{"id": "1", "title": "ok"}\n{"id": "2", "title": \n', "bad.jsonl:2: invalid JSON"),
        ("bad.jsonl", '{"id": "1", "title": "ok"}\n{"title": "no id"}\n', "bad.jsonl:2: missing required field 'id'"),
        ("bad.jsonl", '{"id": "1", "title": "ok", "status": "pending-ish"}\n', "bad.jsonl:1: unknown status"),
        ("bad.jsonl", '{"id": "1", "title": "ok", "opened_at": "yesterday"}\n', "bad.jsonl:1: field 'opened_at'"),
        ("bad.jsonl", '{"id": "1", "title": "a"}\n{"id": "1", "title": "b"}\n', "bad.jsonl:2: duplicate id"),
        ("bad.jsonl", '[1, 2]\n', "bad.jsonl:1: each record must be a JSON object"),
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
    assert (incident.id, incident.title, incident.resolution, incident.product, incident.status) == (
        "INC0010001", "VPN drops", "Disabled power saving", "VPN", "resolved")
    assert incident.resolved_at == "2026-01-02T10:00:00Z"


def test_jira_export_columns_and_map_override(tmp_path):
    text = (
        "Issue key,Summary,Description,Resolution,Status,Resolved,Component/s,Fix notes\n"
        "OPS-7,Mail full,Quota hit,Fixed,Done,12/Mar/26 9:15 AM,Email,Enabled archive\n"
    )
    path = write(tmp_path, "jira.csv", text)
    [plain] = read_incident_file(path, fmt="jira")
    assert (plain.id, plain.resolution_code, plain.status, plain.product) == ("OPS-7", "Fixed", "resolved", "Email")
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


@pytest.mark.parametrize("raw, expected", [
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
])
def test_timestamps_are_normalised_to_utc(raw, expected):
    from kb.importers import normalise_datetime

    assert normalise_datetime(raw) == expected
