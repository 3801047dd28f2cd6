import json

import pytest

from indexer.embedders import HashingEmbedder
from indexer.index_files import current_version, indexing_lock, load_index, read_config
from indexer.pipeline import check_index
from kb.app.service import Service
from kb.config import load_config
from kb.errors import IndexMismatchError, IndexMissingError
from tests.conftest import load_test_data

# Every test here runs on both store engines: SQLite, and PostgreSQL.
pytestmark = pytest.mark.both_engines


def test_index_embeds_each_text_once(service, embedder):
    load_test_data(service)
    first = service.index()
    assert first.texts_embedded > 0 and first.docs_indexed > 0
    batches_after_first = len(embedder.batches)
    second = service.index()
    assert (second.docs_indexed, second.texts_embedded) == (0, 0)
    assert len(embedder.batches) == batches_after_first
    # --rebuild chunks everything again but the content-hash cache still holds every vector.
    rebuilt = service.index(rebuild=True)
    assert rebuilt.docs_indexed == first.docs_indexed and rebuilt.texts_embedded == 0
    assert rebuilt.texts_cached > 0


def test_batches_respect_batch_size(service, embedder, config):
    load_test_data(service)
    service.index()
    assert max(embedder.batches) <= config.batch_size


def test_index_is_incremental(indexed, embedder):
    store = indexed.store()
    before = len(embedder.batches)
    incident = store.get_incident("T-7")
    incident.description += " and the trackpad too"
    store.upsert_incidents([incident])
    report = indexed.index()
    assert report.docs_indexed == 1 and report.texts_embedded == 1
    assert len(embedder.batches) == before + 1


def test_only_prior_resolutions_and_live_articles_are_indexed(indexed):
    counts = indexed.store().count_indexed_docs()
    # 12 resolved incidents (T-12 is open); 4 articles (print-old is archived).
    assert counts == {"incident": 12, "article": 4}


def test_closing_an_article_removes_it(indexed):
    store = indexed.store()
    article = store.get_article("mail-quota")
    article.status = "archived"
    store.upsert_articles([article])
    report = indexed.index()
    assert report.docs_removed == 1
    assert check_index(store, indexed.index_root, indexed.embedder().model_id) == []


def test_index_folder_has_config_and_is_published_atomically(indexed):
    root = indexed.index_root
    version = current_version(root)
    config = read_config(root)
    assert config["version"] == version
    assert config["model_id"] == HashingEmbedder().model_id
    assert config["count"] == config["store_chunks"] > 0
    assert {"faiss", "torch", "sentence_transformers"} <= set(config["software"])
    assert not list(root.glob(".tmp-*"))
    indexed.index(rebuild=True)  # (an unchanged store publishes nothing without --rebuild)
    assert current_version(root) != version


def test_deleting_the_index_folder_rebuilds_from_the_store(indexed):
    import shutil

    shutil.rmtree(indexed.index_root)
    with pytest.raises(IndexMissingError):
        read_config(indexed.index_root)
    report = indexed.index()
    assert report.rebuilt and report.vectors > 0
    assert check_index(indexed.store(), indexed.index_root, indexed.embedder().model_id) == []


def test_refuses_index_built_with_another_model(indexed):
    with pytest.raises(IndexMismatchError, match="kb index --rebuild"):
        load_index(indexed.index_root, "some-other-model@123")


def test_a_crash_before_publish_keeps_the_old_version(indexed, monkeypatch):
    root = indexed.index_root
    before = current_version(root)
    store = indexed.store()
    incident = store.get_incident("T-1")
    incident.title = "vpn drops (edited)"
    store.upsert_incidents([incident])

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("indexer.index_files._write_file", crash)
    with pytest.raises(OSError):
        indexed.index()
    monkeypatch.undo()
    assert current_version(root) == before
    load_index(root, indexed.embedder().model_id)  # still loads
    assert indexed.index().version != before


def test_only_one_indexer_at_a_time(indexed):
    with indexing_lock(indexed.index_root):
        with pytest.raises(BlockingIOError):
            indexed.index()


def test_config_json_is_valid_json(indexed):
    path = indexed.index_root / current_version(indexed.index_root) / "config.json"
    assert json.loads(path.read_text())["normalized"] is True


def test_an_unset_encoder_follows_the_current_index_else_the_default(tmp_path):
    from indexer.index_files import publish_index
    from indexer.vector_index import VectorIndex
    from kb.config import DEFAULT_EMBED_BACKEND, backend_of_model

    assert (
        backend_of_model("all-MiniLM-L6-v2@0123456789ab") == "onnx"
    )  # torch and onnx share vectors
    assert backend_of_model("all-MiniLM-L6-v2@0123456789ab+onnx-int8") == "onnx-int8"
    assert backend_of_model("all-MiniLM-L6-v2@0123456789ab+int8-docs") == "onnx-int8-docs"
    assert backend_of_model("hashing-384-v1") == "hashing" and backend_of_model("") is None
    fresh = Service(load_config(environ={}, home=str(tmp_path / "new")))
    assert fresh.embed_backend() == DEFAULT_EMBED_BACKEND  # a new home
    old = Service(load_config(environ={}, home=str(tmp_path / "old")))
    publish_index(
        old.index_root,
        VectorIndex.empty(384),
        {"model_id": "all-MiniLM-L6-v2@0123456789ab", "log_seq": 0},
    )
    assert (
        old.embed_backend() == "onnx"
    )  # an index built before the default changed keeps its encoder
    chosen = Service(load_config(environ={"KB_EMBED_BACKEND": "torch"}, home=str(tmp_path / "old")))
    assert chosen.embed_backend() == "torch"  # the setting wins


def test_index_again_on_an_unchanged_store_publishes_nothing(indexed):
    from indexer.index_files import current_version
    from kb.importers import incident_from_record

    first = current_version(indexed.index_root)
    versions = sorted(p.name for p in indexed.index_root.iterdir())
    again = indexed.index()
    assert again.unchanged and again.version == first and again.vectors > 0
    assert sorted(p.name for p in indexed.index_root.iterdir()) == versions
    assert current_version(indexed.index_root) == first
    indexed.store().upsert_incidents(
        [
            incident_from_record(
                {
                    "id": "NEW-1",
                    "title": "Badge reader rejects badges",
                    "resolution": "Re-enrolled the badge.",
                    "status": "resolved",
                }
            )
        ]
    )
    changed = indexed.index()
    assert not changed.unchanged and changed.version != first and changed.docs_indexed == 1
    assert not indexed.index(rebuild=True).unchanged  # --rebuild always builds
