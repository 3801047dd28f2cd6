"""`make run` on a machine where it already ran: the Makefile's own recipe, run twice, with
`kb` standing in for the installed one (the hashing embedder, and `kb serve` returning at
once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kb.store import open_store
from tests.conftest import REPO

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make"),
]


def _make_run(tmp_path: Path, home: Path) -> subprocess.CompletedProcess:
    venv = tmp_path / "venv"
    venv.mkdir(exist_ok=True)
    (venv / ".installed").touch()  # newer than setup.cfg: make's install step has nothing to do
    kb = tmp_path / "kb"
    kb.write_text(
        f'#!/bin/sh\n[ "$1" = serve ] && exit 0\nexec "{sys.executable}" -m scripts.cli "$@"\n'
    )
    kb.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "MAKE"))}
    env.update(KB_HOME=str(home), KB_EMBED_BACKEND="hashing", KB_THREADS="1", PYTHONPATH=str(REPO))
    # The small test knowledge base in place of the sample one (the recipe is the same).
    data = REPO / "tests" / "data"
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "run",
            f"VENV={venv}",
            f"KB={kb}",
            f"ARTICLES={data / 'articles'}",
            f"SAMPLE_INCIDENTS={data / 'incidents.jsonl'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _state(home: Path):
    store = open_store(home)
    try:
        users = {
            r[0]: r[1] for r in store.db.execute("SELECT name, password_hash FROM users").fetchall()
        }
        tokens = store.list_tokens()
        return users, tokens
    finally:
        store.close()


def test_make_run_twice_keeps_the_index_the_password_and_the_token(tmp_path):
    home = tmp_path / "home"
    first = _make_run(tmp_path, home)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Created user demo (knowledge_manager) with password" in first.stdout
    assert "API token for curl (role integration): kbt_" in first.stdout
    users, tokens = _state(home)
    versions = sorted(p.name for p in (home / "index").iterdir())

    second = _make_run(tmp_path, home)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "is up to date with the store" in second.stdout and "nothing published" in second.stdout
    assert "User demo already exists; left as it is, password unchanged" in second.stdout
    assert "with password" not in second.stdout and "API token for curl" not in second.stdout
    assert "quickstart already has an active token; none made" in second.stderr
    assert sorted(p.name for p in (home / "index").iterdir()) == versions  # no index version built
    assert _state(home) == (users, tokens)  # the same password hash, one token
    assert [t["name"] for t in tokens] == ["quickstart"]
