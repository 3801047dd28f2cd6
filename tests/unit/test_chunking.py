"""Chunking and the vector index on their own."""

import numpy as np

from indexer.chunking import article_chunks, incident_chunks
from indexer.vector_index import VectorIndex
from kb.models import Article, Incident


def test_articles_are_chunked_by_section():
    body = "## Symptoms\nIt breaks.\n\n## Cause\nBecause.\n\n## Resolution\nFix it.\n"
    chunks = article_chunks(Article(id="a", title="Thing breaks", body=body))
    assert [c.heading for c in chunks] == ["Symptoms", "Cause", "Resolution"]
    assert all(c.text.startswith("Thing breaks.") for c in chunks)


def test_long_incidents_are_windowed_short_ones_are_not():
    short = incident_chunks(Incident(id="1", title="t", description="a few words"))
    assert len(short) == 1
    long = incident_chunks(
        Incident(id="2", title="crash", description=" ".join(f"w{i}" for i in range(700)))
    )
    assert len(long) > 3
    assert all(c.text.startswith("crash\n") for c in long)


def test_vector_index_flat_and_hnsw_agree_on_easy_data():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1000, 1300, dtype=np.int64)
    flat = VectorIndex.build([(ids, vectors)], 32, 300, kind="flat")
    hnsw = VectorIndex.build([(ids, vectors)], 32, 300, kind="hnsw")
    _, a = flat.search(vectors[:20], 1)
    _, b = hnsw.search(vectors[:20], 1)
    assert (a[:, 0] == ids[:20]).all() and (b[:, 0] == ids[:20]).all()
    hnsw.remove(ids[:5])
    _, c = hnsw.search(vectors[:5], 3)
    assert not set(c.ravel().tolist()) & set(ids[:5].tolist())
    flat.add(ids[:5], vectors[:5])  # already present: skipped, not duplicated
    assert len(flat) == 300
