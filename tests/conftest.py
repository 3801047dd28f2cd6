"""Shared fixtures. Every test gets its own data home and the deterministic hashing
embedder (no model loads), unless it is marked ``real_model``."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from indexer.embedders import HashingEmbedder
from kb.app.service import Service
from kb.articles import scan_articles
from kb.config import load_config
from kb.importers import read_incident_file

DATA = Path(__file__).parent / "data"
LAYERS = ("unit", "integration", "live")


def pytest_collection_modifyitems(items):
    """Each test carries the marker of its folder: unit, integration or live."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in LAYERS:
            item.add_marker(getattr(pytest.mark, folder))


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture(scope="session")
def pg_server():
    """A throw-away PostgreSQL server for the whole run (tests/pgserver.py). Without
    PostgreSQL installed the tests that need it are skipped, except where
    KB_REQUIRE_POSTGRES=1 (CI and `make test`), where that is a failure."""
    from tests.pgserver import ThrowawayPostgres, find_bin_dir

    if find_bin_dir() is None:
        if os.environ.get("KB_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is not installed: run scripts/install-postgres.sh")
        pytest.skip("PostgreSQL is not installed (scripts/install-postgres.sh installs it)")
    server = ThrowawayPostgres().start()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server):
    """A new, empty database on the throw-away server, dropped afterwards."""
    url = pg_server.create_database(f"kb_{os.getpid()}_{next(_DATABASES)}")
    yield url
    pg_server.drop_database(url)


_DATABASES = itertools.count(1)


@pytest.fixture
def engine(request) -> str:
    """The store engine a test runs on: sqlite, unless the test is marked both_engines,
    which runs it once on each."""
    return getattr(request, "param", "sqlite")


def pytest_generate_tests(metafunc):
    if metafunc.definition.get_closest_marker("both_engines") and "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def config(home, engine, request):
    url = request.getfixturevalue("pg_url") if engine == "postgresql" else ""
    return load_config(environ={}, home=str(home), embed_backend="hashing", database_url=url)


@pytest.fixture
def embedder():
    return HashingEmbedder()


@pytest.fixture
def service(config, embedder):
    svc = Service(config, embedder=embedder)
    yield svc
    svc.close()


@pytest.fixture
def store(service):
    return service.store()


def load_test_data(service: Service, articles_dir: Path = DATA / "articles") -> None:
    store = service.store()
    store.upsert_articles(
        [p.article for p in scan_articles(articles_dir).parsed], changed_by="test"
    )
    store.upsert_incidents(read_incident_file(DATA / "incidents.jsonl"), source="test")


def real_model_service(home: Path) -> Service:
    """A service with the packaged all-MiniLM-L6-v2 model and the default encoder (int8
    documents, float32 queries) (tests marked real_model; tests/integration/test_km_real_model.py runs the PyTorch one)."""
    return Service(load_config(environ={}, home=str(home)))


def sample_kb_service(home: Path) -> Service:
    """The shipped sample knowledge base, loaded and indexed with the real model."""
    from kb.importers import sample_incidents_path

    service = real_model_service(home)
    store = service.store()
    store.upsert_articles([p.article for p in scan_articles(DATA.parents[1] / "articles").parsed])
    store.upsert_incidents(read_incident_file(sample_incidents_path()))
    service.index()
    return service


@pytest.fixture(scope="session")
def indexed_home_template(tmp_path_factory) -> Path:
    """The small test knowledge base loaded and indexed once per run; each test that asks
    for ``indexed`` gets its own copy of this home (the same as building it again)."""
    home = tmp_path_factory.mktemp("indexed-template") / "home"
    template = Service(
        load_config(environ={}, home=str(home), embed_backend="hashing"), embedder=HashingEmbedder()
    )
    load_test_data(template)
    template.index()
    template.close()
    return home


@pytest.fixture
def indexed(service, indexed_home_template):
    """A service over the small test knowledge base, indexed."""
    if service.config.database_url:
        load_test_data(service)
        service.index()
        return service
    shutil.copytree(indexed_home_template, service.config.home_path, dirs_exist_ok=True)
    return service


@pytest.fixture
def app(indexed, config):
    from web import create_app

    return create_app({"TESTING": True}, config=config, service=indexed)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def tokens(indexed):
    store = indexed.store()
    return {
        role: store.create_token(f"test-{role}", role)
        for role in ("agent", "integration", "knowledge_manager", "admin")
    }


@pytest.fixture
def auth(tokens):
    def header(role: str = "agent") -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    return header


@pytest.fixture
def articles_copy(tmp_path) -> Path:
    target = tmp_path / "articles"
    shutil.copytree(DATA / "articles", target)
    return target
