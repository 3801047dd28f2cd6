"""The compact parts of a search state: the 8-bit memory-mapped index and the columnar
document tables, each checked against the plain structure it replaces."""

import random

import numpy as np
import pytest

from indexer.vector_index import COMPRESSED_THRESHOLD, HNSW_THRESHOLD, VectorIndex, choose_kind
from search.doc_table import ChunkDocs, DocTable
from search.state import DocInfo


def unit_vectors(n: int, d: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_kind_follows_the_store_size():
    assert choose_kind(HNSW_THRESHOLD - 1) == "flat"
    assert choose_kind(HNSW_THRESHOLD) == "hnsw"
    assert choose_kind(COMPRESSED_THRESHOLD - 1) == "hnsw"
    assert choose_kind(COMPRESSED_THRESHOLD) == "hnsw-sq8"


def test_sq8_finds_what_exact_search_finds_and_its_vectors_are_close(tmp_path):
    vectors = unit_vectors(2000)
    ids = np.arange(5, 4005, 2, dtype=np.int64)
    batches = [(ids[i : i + 300], vectors[i : i + 300]) for i in range(0, 2000, 300)]
    flat = VectorIndex.build(batches, 32, 2000, kind="flat")
    sq8 = VectorIndex.build(batches, 32, 2000, kind="hnsw-sq8")
    assert sq8.approximate and not flat.approximate and len(sq8) == 2000
    queries = unit_vectors(40, seed=1)
    _, exact = flat.search(queries, 10)
    _, found = sq8.search(queries, 50)
    recall = np.mean(
        [len(set(e) & set(f)) / 10 for e, f in zip(exact.tolist(), found.tolist(), strict=True)]
    )
    assert recall >= 0.95
    assert np.abs(sq8.vector(int(ids[7])) - vectors[7]).max() < 0.02
    assert sq8.vector(4) is None and not sq8.contains(4)
    assert sorted(sq8.all_ids().tolist()) == ids.tolist()


def test_a_mapped_sq8_index_adds_beside_itself_removes_by_tombstone_and_is_never_written(tmp_path):
    vectors = unit_vectors(600)
    ids = np.arange(600, dtype=np.int64) * 10
    built = VectorIndex.build([(ids, vectors)], 32, 600, kind="hnsw-sq8")
    built.write(tmp_path / "v.faiss")
    mapped = VectorIndex.read(tmp_path / "v.faiss", "hnsw-sq8")
    assert mapped.mapped and len(mapped) == 600
    fresh = unit_vectors(3, seed=9)
    mapped.add(np.array([7, 17, 0]), np.vstack([fresh[:2], vectors[:1]]))  # 0 is already there
    assert len(mapped) == 602 and mapped.contains(7) and mapped.contains(17)
    scores, found = mapped.search(fresh[:1], 3)
    assert found[0, 0] == 7 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(mapped.vector(17), fresh[1])
    with pytest.raises(RuntimeError, match="memory-mapped"):
        mapped.write(tmp_path / "w.faiss")
    mapped.remove(np.array([7, 10, 20]))
    assert len(mapped) == 599 and not mapped.contains(7) and not mapped.contains(10)
    _, found = mapped.search(vectors[1:3], 5)
    assert not {7, 10, 20} & set(found.ravel().tolist())
    assert mapped.tombstones == {10, 20}
    # Read for writing: added vectors go into the graph itself and it can be published.
    writable = VectorIndex.read(tmp_path / "v.faiss", "hnsw-sq8", mmap=False)
    writable.add(np.array([7]), fresh[:1])
    assert writable.delta is None and writable.contains(7)
    writable.write(tmp_path / "w.faiss")
    assert VectorIndex.read(tmp_path / "w.faiss", "hnsw-sq8").contains(7)


def mapping_of(path) -> dict[str, int]:
    """Resident and anonymous kB of this process's mappings of a file (/proc/self/smaps)."""
    totals = {"Rss": 0, "Anonymous": 0, "mappings": 0}
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if len(head) >= 5 and "-" in head[0] and not line.startswith(tuple(totals)):
                inside = line.rstrip().endswith(str(path))
                totals["mappings"] += inside
            elif inside and head and head[0].rstrip(":") in totals:
                totals[head[0].rstrip(":")] += int(head[1])
    return totals


def test_a_mapped_index_is_read_from_the_page_cache_not_copied(tmp_path):
    """The compressed vectors of a mapped index are file pages (shared by every process
    that maps the version), not a private copy: after many searches the file's mapping is
    resident and none of it is anonymous memory."""
    vectors = unit_vectors(10_000, d=384, seed=3)
    built = VectorIndex.build(
        [(np.arange(10_000, dtype=np.int64), vectors)], 384, 10_000, kind="hnsw-sq8"
    )
    path = tmp_path / "v.faiss"
    built.write(path)
    del built
    mapped = VectorIndex.read(path, "hnsw-sq8")
    for seed in range(100):
        mapped.search(unit_vectors(1, d=384, seed=100 + seed), 50)
    seen = mapping_of(path)
    assert seen["mappings"] >= 1 and seen["Rss"] > 1000 and seen["Anonymous"] == 0
    copied = VectorIndex.read(path, "hnsw-sq8", mmap=False)
    assert mapping_of(path)["mappings"] == seen["mappings"] and len(copied) == len(mapped)


def incident(i: int, **extra) -> DocInfo:
    fields = dict(
        kind="incident",
        id=f"INC-{i}",
        title=f"Title {i} é",
        resolution=f"fix {i % 3}",
        product=["vpn", "mail", ""][i % 3],
        category="c",
        status="resolved",
        audience="internal",
        article_id="kb-1" if i % 4 == 0 else "",
        updated=f"2026-01-{1 + i % 28:02d}",
        review_by="",
        res_key=f"r:{i % 3}",
        assignment_group="desk",
        priority="P3",
        escalated="",
    )
    fields.update(extra)
    return DocInfo(**fields)


def test_the_doc_table_reads_and_changes_like_a_dict():
    article = DocInfo(
        kind="article",
        id="kb-1",
        title="VPN",
        resolution="Restart",
        product="vpn",
        category="",
        status="published",
        audience="internal",
        article_id="kb-1",
        updated="",
        review_by="",
        res_key="",
        code=(("vpn reset", False),),
    )
    docs = [incident(i) for i in range(500)] + [article]
    reference = {d.key: d for d in docs}
    table = DocTable(reversed(docs))
    assert len(table) == len(reference) and set(table) == set(reference)
    for key, doc in reference.items():
        assert key in table and table[key] == doc
    assert ("incident", "INC-999") not in table and table.get(("incident", "nope")) is None
    assert table.distinct("product") == {"vpn", "mail"}
    assert table.code_counts("article_id") == {"kb-1": 125}
    assert table.kind_counts() == {"article": 1, "incident": 500}
    rng = random.Random(4)
    for step in range(300):
        i = rng.randrange(700)
        if rng.random() < 0.4:
            assert table.pop(("incident", f"INC-{i}"), None) == reference.pop(
                ("incident", f"INC-{i}"), None
            )
        else:
            doc = incident(i, title=f"changed {step}")
            table.put(doc)
            reference[doc.key] = doc
    assert len(table) == len(reference) and dict(table.items()) == reference


def test_chunk_docs_map_chunks_like_a_dict():
    table = DocTable([incident(i) for i in range(50)])
    pairs = [
        (cid, ("incident", f"INC-{cid // 3}")) for cid in range(180, 0, -1)
    ]  # INC-50.. are not in the table
    chunks = ChunkDocs(pairs, table)
    reference = dict(pairs)
    assert len(chunks) == len(reference) and dict(chunks.items()) == reference
    assert chunks.first_chunk(("incident", "INC-4")) == 12
    assert chunks.first_chunk(("incident", "INC-55")) == 165
    chunks.pop(12)
    reference.pop(12)
    chunks.set(1000, ("incident", "INC-4"))
    chunks.set(13, ("incident", "INC-9"))
    reference[1000] = ("incident", "INC-4")
    reference[13] = ("incident", "INC-9")
    assert chunks.first_chunk(("incident", "INC-4")) == 14
    assert chunks.first_chunk(("incident", "INC-9")) == 13
    assert 12 not in chunks and chunks.get(12) is None and chunks[1000] == ("incident", "INC-4")
    assert len(chunks) == len(reference) and dict(chunks.items()) == reference


def test_incident_vectors_are_read_back_from_the_index_when_asked_for():
    from types import SimpleNamespace

    from search.calibration import IncidentVectors

    vectors = unit_vectors(5)
    index = VectorIndex.build([(np.arange(5, dtype=np.int64), vectors)], 32, 5, kind="flat")
    state = SimpleNamespace(index=index)
    chunks = {
        ("incident", "A"): [0, 1],
        ("incident", "B"): [2],
        ("article", "kb-1"): [3],
        ("incident", "GONE"): [9],
    }
    lazy = IncidentVectors(state, chunks)
    mean = vectors[0] + vectors[1]
    assert np.allclose(lazy["A"], mean / np.linalg.norm(mean), atol=1e-6)
    assert np.allclose(lazy["B"], vectors[2], atol=1e-6)
    assert "A" in lazy and "GONE" not in lazy and "kb-1" not in lazy
    assert sorted(lazy) == ["A", "B"] and len(lazy) == 2
    with pytest.raises(KeyError):
        lazy["GONE"]
    assert np.allclose(lazy.matrix(["B", "A"]), np.vstack([lazy["B"], lazy["A"]]))
