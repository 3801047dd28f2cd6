"""The redactor on its own: each detector's precision and recall on a labelled sample and
on a recall set of every format it must catch (each also in full-width forms), ordinary
incident text kept, checksums, settings."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from kb.importers import read_incident_file, sample_incidents_path
from kb.redaction import (
    DEFAULT_PHONE_REGIONS,
    KINDS,
    Redactor,
    iban_ok,
    luhn_ok,
    parse_kinds,
    parse_phone_regions,
)
from kb.text import normalise_text
from tests.conftest import DATA, REPO

LABELLED = DATA / "redaction" / "labelled.jsonl"
# One case per format the redactor must catch, each also with the value and with the whole
# text in full-width characters.
FORMATS = DATA / "redaction" / "formats.jsonl"
BANKING = REPO.parent / "shared" / "data" / "banking77"


def labelled(path=LABELLED):
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def detector_scores(cases=None) -> dict[str, dict[str, float]]:
    redactor = Redactor()
    tp, fp, fn = Counter(), Counter(), Counter()
    for case in labelled() if cases is None else cases:
        expected = Counter((kind, normalise_text(value)) for kind, value in case["expect"])
        found = Counter((f.kind, f.text) for f in redactor.normalised_findings(case["text"]))
        for key in found | expected:
            hit = min(found[key], expected[key])
            tp[key[0]] += hit
            fp[key[0]] += found[key] - hit
            fn[key[0]] += expected[key] - hit
    return {
        kind: {
            "precision": tp[kind] / max(1, tp[kind] + fp[kind]),
            "recall": tp[kind] / max(1, tp[kind] + fn[kind]),
            "tp": tp[kind],
            "fp": fp[kind],
            "fn": fn[kind],
        }
        for kind in KINDS
    }


def test_each_detector_is_precise_and_finds_what_it_should():
    scores = detector_scores()
    for kind, score in scores.items():
        assert score["tp"] > 0, kind  # the sample exercises every kind
        assert score["precision"] >= 0.9 and score["recall"] >= 0.9, (kind, score)


@pytest.mark.parametrize("case", labelled(FORMATS), ids=lambda case: case["format"])
def test_every_format_is_caught_in_every_width(case):
    redacted = Redactor().redact(case["text"])
    for kind, value in case["expect"]:
        assert normalise_text(value) not in redacted and value not in redacted, redacted
        assert f"[{kind}]" in redacted, redacted


def test_recall_set_covers_every_kind_and_is_found_exactly():
    scores = detector_scores(labelled(FORMATS))
    for kind, score in scores.items():
        assert score["tp"] > 0, kind
        assert score["fn"] == 0 and score["fp"] == 0, (kind, score)


def test_full_width_text_is_normalised_before_it_is_redacted():
    text = "card ４５３９ １４８８ ０３４３ ６４６７ mail ｆｗ．ｔｅｓｔ＠ｅｘａｍｐｌｅ．ｃｏｍ"
    assert Redactor().redact(text) == "card [card] mail [email]"
    # Text with nothing to redact is still stored as it is indexed: normalised.
    assert Redactor().redact("ＶＰＮ drops") == "VPN drops"
    assert Redactor(()).redact("ＶＰＮ drops") == "ＶＰＮ drops"


def test_redacted_text_keeps_its_shape_and_placeholders_are_searchable_words():
    text = "call +44 20 7946 0958 or mail maria.garcia@example.org; password: hunter22"
    assert Redactor().redact(text) == "call [phone] or mail [email]; password: [secret]"
    # Redacting twice changes nothing more.
    assert Redactor().redact(Redactor().redact(text)) == Redactor().redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "Outlook 16.0.17126.20132 error 0x80070005",
        "ORA-12541 on db-prod-03.corp.example.com:1521",
        "INC-0012345 and CHG0031337",
        "KB5034441 build 10.0.19045.3803",
        "2026-11-30T09:13:11Z",
        "java.lang.NullPointerException at Foo.java:214",
        "order 1234567 charged 25.00 twice",
        "Access denied for user 'hive'@'localhost' (using password: YES)",
        "2004-12-09 16:41:33,296 INFO",
        "0000: 00 32 00 30 00 31 00 30",
        "ID:JMATHAIY-WXP01-3697-1235159811727-2 acked with key",
        "password = ActiveMQConnection.DEFAULT_PASSWORD;",
        "<password>${activemq.password}</password>",
        "the key ScheduledThreadPoolExecutor rejected the task",
        "timestamp 20050116052458 id 1264028626290",
        "Changed it to send an Authorization: Bearer header.",
        "token = oauth.refresh_token(TOKEN_URL, rt)",
        "conn.access_token = token['access_token']",
    ],
)
def test_versions_error_codes_hosts_and_ticket_ids_are_kept(text):
    assert Redactor().redact(text) == text


def _kept_share(texts: list[str]) -> float:
    redactor = Redactor()
    words = kept = 0
    for text in texts:
        before = re.findall(r"\S+", text)
        after = set(re.findall(r"\S+", redactor.redact(text)))
        words += len(before)
        kept += sum(1 for w in before if w in after)
    return kept / max(1, words)


def test_ordinary_incident_text_keeps_99_percent_of_its_words():
    incidents = read_incident_file(sample_incidents_path())
    texts = [f"{i.title}\n{i.description}\n{i.resolution}" for i in incidents]
    assert _kept_share(texts) >= 0.99


@pytest.mark.skipif(
    not BANKING.exists(), reason="../shared/data/banking77 is not beside the checkout"
)
def test_customer_service_requests_keep_99_percent_of_their_words():
    files = sorted(BANKING.glob("*.csv")) + sorted(BANKING.glob("*.jsonl"))
    assert files, BANKING
    texts = []
    for line in files[0].read_text(encoding="utf-8").splitlines()[1:5001]:
        texts.append(line.rsplit(",", 1)[0].strip('"'))
    assert _kept_share(texts) >= 0.99


def test_checksums():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")
    assert (
        Redactor().redact("card 4111 1111 1111 1112 iban DE89 3704 0044 0532 0130 01")
        == "card 4111 1111 1111 1112 iban DE89 3704 0044 0532 0130 01"
    )


def test_settings_choose_the_kinds():
    assert parse_kinds("") == KINDS and parse_kinds(None) == KINDS
    assert parse_kinds("none") == ()
    assert parse_kinds("email, secret") == ("secret", "email")
    assert parse_phone_regions("") == DEFAULT_PHONE_REGIONS and parse_phone_regions("none") == ()
    assert parse_phone_regions("de, jp") == ("DE", "JP")
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        parse_phone_regions("US,XX")
    assert (
        Redactor(phone_regions=("US",)).redact("Handy 0171 2345678, office 212 555 4616")
        == "Handy 0171 2345678, office [phone]"
    )
    assert Redactor(phone_regions=()).redact("+49 171 2345678") == "[phone]"
    with pytest.raises(ValueError, match="unknown redaction kind 'ssn'"):
        parse_kinds("email,ssn")
    keep_ips = Redactor(k for k in KINDS if k != "ip")
    assert keep_ips.redact("vpn peer 10.8.0.1 mail a@b.example") == "vpn peer 10.8.0.1 mail [email]"
    assert Redactor(()).redact("a@b.example") == "a@b.example"


def test_the_evaluation_counts_findings_per_kind_and_per_thousand_texts(tmp_path):
    from scripts.redaction_eval import labelled_scores, text_findings

    texts = tmp_path / "incidents.jsonl"
    texts.write_text(
        "\n".join(
            json.dumps(r)
            for r in (
                {
                    "title": "VPN",
                    "description": "mail ｊｏｅ＠ｅｘａｍｐｌｅ．ｏｒｇ or call 0171 2345678",
                },
                {
                    "title": "Printer",
                    "description": "queue stuck since 2.3.0",
                    "resolution": "restarted",
                },
            )
        ),
        encoding="utf-8",
    )
    report = text_findings(texts, Redactor(), sample=5)
    assert report["texts"] == 2 and report["findings"] == {"email": 1, "phone": 1}
    assert report["per_1000_texts"] == {"email": 500.0, "phone": 500.0}
    assert report["sample"]["email"][0]["finding"] == "joe@example.org"
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps({"text": "pwd=hunter22 and 10.1.2.3", "expect": [["secret", "hunter22"]]}),
        encoding="utf-8",
    )
    scores = labelled_scores(cases, Redactor())
    assert (
        scores["recall"] == 1.0
        and scores["precision"] == 0.5
        and scores["by_kind"]["ip"]["fp"] == 1
    )


def test_the_libraries_load_and_run_without_the_network():
    """detect-secrets, phonenumbers and python-stdnum read only the data they ship with: a
    fresh process that cannot open a connection redacts every kind."""
    import subprocess
    import sys

    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('no network')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from kb.redaction import Redactor\n"
        "print(Redactor().redact('DB_PASSWORD=Spr1ngT1me! AccountKey=k3Y9vQ2mXpL8rT4wZ6nB1cF5hJ7dS0aE; "
        "ghp_Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fGh7J de89 3704 0044 0532 0130 00 4370.9360.5729.8084 "
        "0171 2345678 536-90-4399 x@example.Com'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "DB_PASSWORD=[secret]",
        "AccountKey=[secret];",
        "[secret]",
        "[iban]",
        "[card]",
        "[phone]",
        "[national_id]",
        "[email]",
    ]


def test_libraries_load_on_first_use_or_when_a_worker_starts():
    """Importing the redactor loads none of the libraries (commands that never redact start
    fast); Redactor.load, which a server worker calls as it starts, loads them all."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from kb.redaction import Redactor\n"
        "names = ('detect_secrets', 'phonenumbers', 'stdnum.iban')\n"
        "print(*[name in sys.modules for name in names])\n"
        "Redactor().load()\n"
        "print(*[name in sys.modules for name in names])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False False False", "True True True"]
