"""Leader clustering and distinctive terms of knowledge gaps."""

import numpy as np

from kb.app.gaps import distinctive_terms, leader_clusters


def test_leader_clusters_group_by_threshold_with_the_most_central_first():
    vectors = np.array(
        [[1, 0, 0], [0.95, 0.31, 0], [0.95, -0.31, 0], [0, 1, 0], [0, 0.97, 0.24], [0, 0, 1]],
        dtype=np.float32,
    )
    assert leader_clusters(vectors, 0.9) == [[0, 1, 2], [3, 4], [5]]
    assert leader_clusters(vectors, 0.999) == [[0], [1], [2], [3], [4], [5]]
    assert leader_clusters(np.zeros((0, 3), dtype=np.float32), 0.5) == []


def test_distinctive_terms_prefer_words_rare_elsewhere():
    cluster = ["vpn drops at home", "vpn drops on wifi"]
    everything = cluster + ["printer drops jobs", "mail drops messages", "home printer"]
    # "vpn": in every query of the cluster and nowhere else. "drops" is in every one too,
    # but common elsewhere: "wifi", in one of them and nowhere else, outranks it.
    assert distinctive_terms(cluster, everything, limit=4) == ["vpn", "wifi", "drops", "home"]
    assert distinctive_terms(cluster, cluster, limit=2) == ["drops", "vpn"]
