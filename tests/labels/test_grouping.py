"""Group weights (the paper's formula) and the streaming, order-independent spherical K-means."""
import numpy as np
import pytest

from projects.sam_mtp.labels import group_weights
from projects.sam_mtp.labels.frame_labels.grouping import (
    KeyedSample,
    assign_groups,
    frame_sample_keys,
    l2_normalize,
    spherical_kmeans,
)


def test_weight_formula_on_the_spec_example():
    w = group_weights([1000, 100, 10])
    np.testing.assert_allclose(w, [0.005, 0.474, 0.521], atol=1e-3)
    # By hand: k = (n - 10) / 1000 = [0.99, 0.09, 0]; tau = [0.01, 0.91, 1]; w = tau / 1.92.
    np.testing.assert_allclose(w, np.array([0.01, 0.91, 1.0]) / 1.92, rtol=1e-12)
    np.testing.assert_allclose(group_weights([5, 5, 5, 5]), 0.25)


def test_empty_groups_get_zero_weight_and_leave_the_others_unchanged():
    # n_min over the non-empty groups: an empty group must not make the largest group's weight 0.
    w = group_weights([1000, 100, 10, 0])
    np.testing.assert_allclose(w, np.array([0.01, 0.91, 1.0, 0.0]) / 1.92, rtol=1e-12)
    assert w[0] > 0 and w[3] == 0
    np.testing.assert_allclose(group_weights([0, 7, 0, 7]), [0, 0.5, 0, 0.5])
    with pytest.raises(ValueError, match='at least one non-empty group'):
        group_weights([0, 0])


def _blobs(seed, per_cluster=60, k=4, dim=8):
    rng = np.random.default_rng(seed)
    centres = l2_normalize(rng.normal(size=(k, dim)) * 5)
    points = np.repeat(centres, per_cluster, 0) + rng.normal(scale=0.05, size=(k * per_cluster, dim))
    truth = np.repeat(np.arange(k), per_cluster)
    return points.astype(np.float32), truth, centres


def test_kmeans_recovers_clusters_and_is_deterministic():
    points, truth, _ = _blobs(0, per_cluster=100)
    sizes = [100, 60, 40, 20]
    keep = np.concatenate([np.flatnonzero(truth == c)[:s] for c, s in enumerate(sizes)])
    points, truth = points[keep], truth[keep]
    cent = spherical_kmeans(points, 4, seed=0, n_init=2)
    again = spherical_kmeans(points, 4, seed=0, n_init=2)
    np.testing.assert_array_equal(cent, again)
    np.testing.assert_allclose(np.linalg.norm(cent, axis=1), 1, rtol=1e-5)
    labels = assign_groups(points, cent)
    # Perfect recovery up to renumbering, and groups are numbered by decreasing size.
    pairs = set(zip(truth.tolist(), labels.tolist()))
    assert len(pairs) == 4
    assert np.bincount(labels).tolist() == sizes
    # Cosine K-means: the scale of a feature does not matter.
    np.testing.assert_array_equal(assign_groups(points * 7.0, cent), labels)
    with pytest.raises(ValueError, match='at least K region features'):
        spherical_kmeans(points[:3], 4)
    with pytest.raises(ValueError, match='channels'):
        assign_groups(points[:, :5], cent)


def cosine_objective(points, centroids):
    """Spherical K-means objective: sum over points of 1 - cosine similarity to the nearest centroid."""
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    unit_c = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    return float((1 - (unit.astype(np.float64) @ unit_c.astype(np.float64).T).max(axis=1)).sum())


def test_kmeans_returns_the_restart_with_the_lowest_objective(monkeypatch):
    """Six overlapping blobs of unequal sizes in 3-d: the 4 restarts of seed 0 end in different local optima, the
    best one neither first nor last. The returned centroids must have the lowest objective of all restarts."""
    from projects.sam_mtp.labels.frame_labels import grouping
    rng = np.random.default_rng(5)
    centres = l2_normalize(rng.normal(size=(6, 3)))
    points = np.concatenate([c + rng.normal(scale=0.25, size=(n, 3))
                             for c, n in zip(centres, (40, 30, 25, 20, 15, 10))]).astype(np.float32)
    restarts = []
    lloyd = grouping._lloyd
    monkeypatch.setattr(grouping, '_lloyd', lambda *args: restarts.append(lloyd(*args)) or restarts[-1])
    centroids = spherical_kmeans(points, 6, seed=0, n_init=4)

    per_restart = [cosine_objective(points, c.numpy()) for c, _ in restarts]
    assert len(per_restart) == 4
    best = int(np.argmin(per_restart))
    assert 0 < best < 3  # keeping the first or the last restart would not pass either
    assert sorted(per_restart)[1] > 1.2 * per_restart[best]  # genuinely different optima
    assert cosine_objective(points, centroids) == pytest.approx(per_restart[best], rel=1e-5)


def test_keyed_sample_is_the_smallest_keys_whatever_the_order():
    rng = np.random.default_rng(1)
    frames = [(f'scene{i % 3}', i, rng.normal(size=(rng.integers(1, 30), 4)).astype(np.float16))
              for i in range(40)]
    def run(order, capacity):
        sample = KeyedSample(capacity)
        for i in order:
            scene, fid, rows = frames[i]
            sample.add(rows, frame_sample_keys(7, scene, fid, len(rows)))
        return sample.result(), sample.seen
    forward, seen = run(range(40), 50)
    backward, _ = run(range(39, -1, -1), 50)
    np.testing.assert_array_equal(forward, backward)
    # Brute force: all rows with their keys, sorted, first 50.
    rows = np.concatenate([f[2] for f in frames])
    keys = np.concatenate([frame_sample_keys(7, s, i, len(r)) for s, i, r in frames])
    np.testing.assert_array_equal(forward, rows[np.argsort(keys)[:50]])
    assert seen == len(rows)
    everything, _ = run(range(40), 10 ** 6)
    assert len(everything) == len(rows)
    with pytest.raises(ValueError, match='capacity'):
        KeyedSample(0)
