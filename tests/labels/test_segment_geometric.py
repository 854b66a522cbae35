"""Geometric over-segmentation (the NOT-SAM fallback): Felzenszwalb-Huttenlocher against a from-the-paper
reference, normals against planes, and segments of a synthetic S3DIS room against its instances."""
import os

import numpy as np
import pytest

from projects.sam_mtp.datasets.synthetic import write_synthetic_s3dis
from projects.sam_mtp.labels.segments.geometric import estimate_normals, felzenszwalb_segments, geometric_segments


def _reference_felzenszwalb(num_nodes, edges, weights, k, min_size):
    """FH (IJCV 2004, Alg. 1) written directly from the paper with explicit component sets."""
    comp = {i: {i} for i in range(num_nodes)}
    owner = list(range(num_nodes))
    internal = {i: 0.0 for i in range(num_nodes)}
    order = np.argsort(weights, kind='stable')
    for e in order:
        a, b = owner[edges[e][0]], owner[edges[e][1]]
        if a == b:
            continue
        w = weights[e]
        if w <= min(internal[a] + k / len(comp[a]), internal[b] + k / len(comp[b])):
            keep, gone = (a, b) if len(comp[a]) >= len(comp[b]) else (b, a)
            comp[keep] |= comp.pop(gone)
            for n in comp[keep]:
                owner[n] = keep
            internal[keep] = max(internal[keep], internal.pop(gone), w)
    for e in order:
        a, b = owner[edges[e][0]], owner[edges[e][1]]
        if a != b and (len(comp[a]) < min_size or len(comp[b]) < min_size):
            keep, gone = (a, b) if len(comp[a]) >= len(comp[b]) else (b, a)
            comp[keep] |= comp.pop(gone)
            for n in comp[keep]:
                owner[n] = keep
    return np.array(owner)


def _same_partition(a, b):
    pairs = np.unique(np.stack([a, b], 1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize('seed, k, min_size', [(0, 0.3, 1), (1, 1.0, 1), (2, 0.3, 4), (3, 0.6, 3)])
def test_felzenszwalb_matches_the_paper_reference(seed, k, min_size):
    rng = np.random.default_rng(seed)
    n = 40
    edges = np.unique(np.sort(rng.integers(0, n, (120, 2)), 1), axis=0)
    edges = edges[edges[:, 0] != edges[:, 1]]
    weights = np.round(rng.random(len(edges)), 3)  # ties included: both sides use a stable sort
    ours = felzenszwalb_segments(n, edges, weights, k, min_size)
    assert _same_partition(ours, _reference_felzenszwalb(n, edges, weights, k, min_size))
    assert 1 < len(np.unique(ours)) < n  # a non-trivial case


def test_normals_of_planes_and_errors():
    rng = np.random.default_rng(0)
    plane = np.c_[rng.random((200, 2)), np.zeros(200)]                        # z = 0
    tilted = plane @ np.array([[1, 0, 0], [0, 0.6, 0.8], [0, -0.8, 0.6]])      # normal (0, -0.8, 0.6)
    from scipy.spatial import cKDTree
    for pts, normal in ((plane, [0, 0, 1]), (tilted, [0, -0.8, 0.6])):
        nbr = cKDTree(pts).query(pts, k=10)[1]
        np.testing.assert_allclose(np.abs(estimate_normals(pts, nbr) @ np.array(normal)), 1.0, atol=1e-6)
    with pytest.raises(KeyError, match='unknown geometric segment setting'):
        geometric_segments(plane, voxel=1)
    with pytest.raises(ValueError, match='voxel_size > 0'):
        geometric_segments(plane, voxel_size=0)
    assert geometric_segments(np.zeros((0, 3))).shape == (0, )


def test_geometric_segments_of_a_synthetic_room_follow_its_surfaces(tmp_path):
    """A room at a realistic density (mmdet3d's S3DIS rooms are much denser still): segments stay inside one
    instance (floor, a wall, a piece of furniture) and merge it into a few pieces."""
    root = str(tmp_path / 's3dis')
    write_synthetic_s3dis(root, {3: 1}, seed=4, num_points=30000)
    points = np.fromfile(os.path.join(root, 'points', 'Area_3_office_1.bin'), np.float32).reshape(-1, 6)
    truth = np.fromfile(os.path.join(root, 'instance_mask', 'Area_3_office_1.bin'), np.int64)
    labels = geometric_segments(points[:, :3], points[:, 3:])
    assert (labels >= 0).all()
    purity = sum(np.bincount(truth[labels == s]).max() for s in np.unique(labels)) / len(labels)
    assert purity > 0.97
    largest_piece = [np.bincount(labels[truth == i]).max() / (truth == i).sum() for i in np.unique(truth)]
    assert np.mean(largest_piece) > 0.4 and 5 <= labels.max() + 1 <= 300
    # the floor (the largest instance, id after the objects) is one piece for the most part
    floor = np.bincount(truth).argmax()
    assert np.bincount(labels[truth == floor]).max() / (truth == floor).sum() > 0.8
