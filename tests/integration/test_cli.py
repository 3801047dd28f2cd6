import json

import click
import pytest
from click.testing import CliRunner

from scripts.cli import cli


@pytest.fixture
def run(home, monkeypatch):
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.setenv("KB_EMBED_BACKEND", "hashing")
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))


def test_every_command_has_help(run):
    """Each command's --help shows its own description and says what each option does."""
    for path, command in all_commands(cli):
        result = run(*path, "--help")
        assert result.exit_code == 0, path
        first_line = (command.help or "").strip().splitlines()[0] if command.help else ""
        assert first_line, f"kb {' '.join(path)} has no help text"
        assert " ".join(first_line.split()[:4]) in " ".join(result.output.split()), path
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"kb {' '.join(path)} {param.opts[0]} has no help text"


def test_first_run_end_to_end(run, data_dir):
    assert run("init").exit_code == 0
    assert "already" in run("init").output  # idempotent
    result = run("import", "articles", str(data_dir / "articles"))
    assert result.exit_code == 0 and "5 new" in result.output
    result = run("import", "incidents", str(data_dir / "incidents.jsonl"))
    assert result.exit_code == 0 and "13 new" in result.output
    result = run("index")
    assert result.exit_code == 0 and "holds" in result.output
    result = run("search", "vpn keeps disconnecting", "--json")
    body = json.loads(result.output)
    assert body["results"][0]["id"] == "net-vpn-drops"
    result = run("search", "vpn keeps disconnecting", "--k", "2")
    assert result.output.startswith("1. [article] net-vpn-drops")


def test_commands_need_a_data_home(run):
    result = run("index")
    assert result.exit_code == 1 and "kb init" in result.output


def test_broken_import_exits_nonzero_and_changes_nothing(run, tmp_path):
    run("init")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "title": "ok", "resolution": "r"}\n{"id": 2, "title": \n')
    result = run("import", "incidents", str(bad))
    assert result.exit_code == 1
    assert "bad.jsonl:2: invalid JSON" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = run("import", "incidents", str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 1 and "no such file" in result.output


def test_bad_articles_are_reported_and_good_ones_kept(run, articles_copy):
    run("init")
    (articles_copy / "broken.md").write_text(
        "---\nid: broken\ntitle: B\nstatus: nope\naudience: internal\n---\n"
    )
    result = run("import", "articles", str(articles_copy))
    assert result.exit_code == 1
    assert "broken.md:4: unknown status" in result.output
    assert "5 new" in result.output


def test_tokens_and_users(run):
    run("init")
    token = run("tokens", "create", "ticketing", "--role", "integration").output.strip()
    assert token.startswith("kbt_")
    assert run("tokens", "create", "x", "--role", "root").exit_code == 2
    result = run(
        "users", "create", "ana", "--role", "agent", "--password-stdin", input="long-enough-pw\n"
    )
    assert result.exit_code == 0
    result = run(
        "users", "create", "ana", "--role", "agent", "--password-stdin", input="long-enough-pw\n"
    )
    assert result.exit_code == 1 and "already exists" in result.output
    result = run("users", "create", "ana", "--role", "admin", "--generate-password", "--update")
    assert result.exit_code == 0 and "Updated user ana (admin) with password" in result.output


def _audit(home):
    from kb.store import open_store

    store = open_store(home)
    try:
        return [(e["actor"], e["action"], e["target"]) for e in store.audit_entries()]
    finally:
        store.close()


def test_people_and_tokens_are_listed_without_secrets(run):
    run("init")
    token = run("tokens", "create", "ticketing", "--role", "integration").output.strip()
    run("tokens", "create", "scripts", "--role", "agent")
    run("users", "create", "ana", "--role", "agent", "--password-stdin", input="long-enough-pw\n")
    run(
        "users",
        "create",
        "kim",
        "--role",
        "knowledge_manager",
        "--password-stdin",
        input="long-enough-pw\n",
    )
    run("users", "disable", "kim")
    listed = run("tokens", "list").output
    assert (
        "ticketing" in listed
        and "integration" in listed
        and "scripts" in listed
        and token not in listed
    )
    users = json.loads(run("users", "list", "--json").output)
    assert [(u["name"], u["role"], u["disabled"]) for u in users] == [
        ("ana", "agent", False),
        ("kim", "knowledge_manager", True),
    ]
    assert "password" not in json.dumps(users)
    table = run("users", "list").output
    assert "kim" in table and "disabled" in table and "ana" in table

    assert run("tokens", "revoke", "scripts").output.strip() == "Revoked 1 token(s) of scripts"
    assert "scripts" not in run("tokens", "list").output
    tokens = json.loads(run("tokens", "list", "--all", "--json").output)
    assert {t["name"]: t["active"] for t in tokens} == {"ticketing": True, "scripts": False}
    again = run("tokens", "revoke", "scripts")
    assert again.exit_code == 1 and "'scripts' has no active token" in again.output


def test_the_person_making_a_change_is_recorded(run, home, monkeypatch):
    import os
    import pwd

    run("init")
    run("--as", "alice", "tokens", "create", "one", "--role", "agent")
    run("tokens", "create", "two", "--role", "agent", "--as", "bob")
    monkeypatch.setenv("USER", "carol")
    monkeypatch.setenv("LOGNAME", "carol")
    run("tokens", "revoke", "one")
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    run("users", "create", "ana", "--role", "agent", "--password-stdin", input="long-enough-pw\n")
    account = pwd.getpwuid(os.getuid()).pw_name
    entries = _audit(home)
    assert ("cli:alice", "token create", "one") in entries
    assert ("cli:bob", "token create", "two") in entries
    assert ("cli:carol", "token revoke", "one") in entries
    assert (f"cli:{account}", "user create", "ana") in entries
    assert not any(actor == "cli:unknown" for actor, _, _ in entries)
    bad = run("--as", "", "tokens", "create", "three", "--role", "agent")
    assert bad.exit_code == 2 and "1 to 100 printable characters" in bad.output


def test_eval_reports_metrics(run, data_dir, tmp_path):
    run("init")
    run("import", "articles", str(data_dir / "articles"))
    run("import", "incidents", str(data_dir / "incidents.jsonl"))
    run("index")
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        json.dumps({"text": "vpn tunnel keeps dropping on wifi", "relevant": ["net-vpn-drops"]})
        + "\n"
        + json.dumps(
            {
                "text": "laptop keyboard broken",
                "relevant": ["Replaced the keyboard under warranty."],
            }
        )
        + "\n"
        + json.dumps({"text": "zqxj wvut plmk", "relevant": []})
        + "\n"
    )
    report = json.loads(run("eval", str(queries), "--json").output)
    assert report["in_scope"] == 2 and report["out_of_scope"] == 1
    assert report["accuracy_at_1"] == 1.0 and report["recall_at_5"] == 1.0
    assert report["flagged_out_of_scope"] == 1
    table = run("eval", str(queries), "--ranking", "all").output
    for name in ("shipped", "dense", "bm25", "rrf"):
        assert name in table
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text(
        json.dumps(
            {
                "text": "vpn tunnel keeps dropping on wifi",
                "relevant": ["connectivity"],
                "product": "VPN",
                "customer_tier": "Gold",
            }
        )
        + "\n"
    )
    routed = json.loads(
        run("eval", str(labelled), "--json", "--route-from-relevant", "category").output
    )
    fields = routed["routing_fields"]
    assert set(fields) == {"category", "product"} and routed["routing"] is None
    assert fields["category"]["queries"] == 1 and fields["category"]["accuracy_at_1"] == 1.0
    assert fields["product"]["nearest_neighbour_baseline"] == 1.0
    assert (
        "Routing category (1 queries): acc@1 1.000"
        in run("eval", str(labelled), "--route-from-relevant", "category").output
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"relevant": []}\n')
    result = run("eval", str(bad))
    assert result.exit_code == 1 and "bad.jsonl:1" in result.output


def test_serve_refuses_a_bad_or_busy_port_in_one_line(home):
    import socket

    from click.testing import CliRunner

    from scripts.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--home", str(home)]).exit_code == 0
    result = runner.invoke(cli, ["serve", "--home", str(home), "--port", "99999"])
    assert result.exit_code == 2 and "99999" in result.output and "Traceback" not in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(cli, ["serve", "--home", str(home), "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: the port is in use"
    ]


def test_users_disable_ends_sign_in(home):
    from click.testing import CliRunner

    from kb.store import open_store
    from scripts.cli import cli

    runner = CliRunner()
    assert runner.invoke(cli, ["init", "--home", str(home)]).exit_code == 0
    made = runner.invoke(
        cli,
        ["users", "create", "zoe", "--role", "agent", "--password-stdin", "--home", str(home)],
        input="a long password\n",
    )
    assert made.exit_code == 0, made.output
    result = runner.invoke(cli, ["users", "disable", "zoe", "--home", str(home)])
    assert result.exit_code == 0 and "sessions have ended" in result.output
    with open_store(home, create=False) as store:
        assert (
            store.authenticate_user("zoe", "a long password") is None
            and store.session_epoch("zoe") is None
        )
    again = runner.invoke(
        cli,
        [
            "users",
            "create",
            "zoe",
            "--role",
            "agent",
            "--password-stdin",
            "--update",
            "--home",
            str(home),
        ],
        input="another long password\n",
    )
    assert again.exit_code == 0, again.output
    with open_store(home, create=False) as store:
        assert store.authenticate_user("zoe", "another long password") is not None
    assert runner.invoke(cli, ["users", "disable", "nobody", "--home", str(home)]).exit_code == 1


def test_search_k_follows_the_max_k_setting(run, data_dir, monkeypatch):
    run("init")
    run("import", "articles", str(data_dir / "articles"))
    run("index")
    monkeypatch.setenv("KB_MAX_K", "3")
    refused = run("search", "vpn keeps disconnecting", "--k", "4")
    assert refused.exit_code != 0 and "KB_MAX_K" in refused.output
    assert run("search", "vpn keeps disconnecting", "--k", "3").exit_code == 0
