"""Geometric over-segmentation of a point cloud: the fallback for data without images. **It is not SAM.**

SAM-MTP's segments come from SAM masks (paper §3.2). When a dataset has no images (mmdet3d's S3DIS layout
without the Stanford 2D-3D-S images, or custom point clouds), this module gives a purely geometric proxy, in the
spirit of ScanNet's mesh segmentator (Felzenszwalb-Huttenlocher graph segmentation over surface normals):

1. **Voxels.** Points are averaged in ``voxel_size`` cubes (position and colour), which bounds the cost on
   million-point S3DIS rooms and evens out the sampling density.
2. **Normals.** Each voxel's normal is the smallest-eigenvalue eigenvector of the covariance of its
   ``normal_knn`` nearest voxels.
3. **Graph.** Every voxel is linked to its ``graph_knn`` nearest voxels (closer than ``max_edge_length`` when
   it is set; by default no cutoff, so sparse clouds stay connected); an edge weighs
   ``(1 - |n_a . n_b|) + color_weight * |c_a - c_b| / sqrt(3)`` (colours in [0, 1]).
4. **Felzenszwalb-Huttenlocher** (IJCV 2004): edges in ascending weight order merge two components when the
   weight is at most ``min(Int(A) + k / |A|, Int(B) + k / |B|)`` (``Int`` = the largest weight inside a
   component, ``k`` = ``threshold``); then, again in weight order, components smaller than
   ``min_segment_voxels`` join their neighbour.
5. Every point takes its voxel's segment; segments with fewer than ``min_segment_points`` points become -1.

The union-find loop is compiled with numba when it is installed (mmdet3d depends on it) and runs as plain
Python otherwise.
"""
import math

import numpy as np

from ..formats.scene_segments import compact_segments

DEFAULT_GEOMETRIC_CFG = dict(voxel_size=0.02, normal_knn=16, graph_knn=8, max_edge_length=None, color_weight=0.1,
                             threshold=0.1, min_segment_voxels=50, min_segment_points=1)


try:  # numba turns the union-find loops from seconds into milliseconds on real rooms (mmdet3d depends on it)
    from numba import njit
except ImportError:  # pragma: no cover
    def njit(**_):
        return lambda fn: fn


@njit(cache=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@njit(cache=True)
def _felzenszwalb(num_nodes, edge_a, edge_b, weight, threshold, min_size):
    """Component root of every node; the edges must be sorted by ascending weight."""
    parent = np.arange(num_nodes)
    size = np.ones(num_nodes, np.int64)
    internal = np.zeros(num_nodes, np.float64)  # largest weight inside each component (at its root)
    for e in range(len(weight)):
        a = _find(parent, edge_a[e])
        b = _find(parent, edge_b[e])
        if a == b:
            continue
        w = weight[e]
        if w <= internal[a] + threshold / size[a] and w <= internal[b] + threshold / size[b]:
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a
            size[a] += size[b]
            internal[a] = w  # edges come sorted: w is the largest weight inside the merged component
    for e in range(len(weight)):
        a = _find(parent, edge_a[e])
        b = _find(parent, edge_b[e])
        if a != b and (size[a] < min_size or size[b] < min_size):
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a
            size[a] += size[b]
    for i in range(num_nodes):
        parent[i] = _find(parent, i)
    return parent


def felzenszwalb_segments(num_nodes: int, edges: np.ndarray, weights: np.ndarray, threshold: float,
                          min_size: int = 1) -> np.ndarray:
    """Component root (a node id) of every node of a weighted graph under Felzenszwalb-Huttenlocher's rule.

    Args:
        edges: (E, 2) int node pairs; weights: (E,) float.
        threshold: FH's ``k``: larger values give larger segments.
        min_size: components below this many nodes are merged into a neighbour afterwards.
    """
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    weights = np.asarray(weights, np.float64)
    if len(edges) != len(weights):
        raise ValueError(f'{len(edges)} edges but {len(weights)} weights')
    order = np.argsort(weights, kind='stable')
    return _felzenszwalb(int(num_nodes), np.ascontiguousarray(edges[order, 0]),
                         np.ascontiguousarray(edges[order, 1]), np.ascontiguousarray(weights[order]),
                         float(threshold), int(min_size))


def voxelize(xyz: np.ndarray, voxel_size: float):
    """(voxel of every point, number of voxels) for cubes of ``voxel_size`` metres."""
    cells = np.floor((xyz - xyz.min(0)) / voxel_size).astype(np.int64)
    dims = cells.max(0, initial=0) + 1
    keys = cells[:, 0] + dims[0] * (cells[:, 1] + dims[1] * cells[:, 2])  # one int64 per cell: a fast 1-D unique
    _, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    return inverse, int(inverse.max()) + 1 if len(inverse) else 0


def _voxel_means(values: np.ndarray, voxel: np.ndarray, num_voxels: int) -> np.ndarray:
    counts = np.bincount(voxel, minlength=num_voxels).astype(np.float64)
    return np.stack([np.bincount(voxel, values[:, i], num_voxels) for i in range(values.shape[1])], 1) / counts[:, None]


def estimate_normals(xyz: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3): smallest-eigenvalue eigenvectors of the covariance of each point's neighbours
    ``neighbours`` (N, k) (indices into ``xyz``, the point itself included)."""
    nb = xyz[neighbours]                                    # (N, k, 3)
    centred = nb - nb.mean(1, keepdims=True)
    cov = centred.transpose(0, 2, 1) @ centred
    _, vectors = np.linalg.eigh(cov)                        # ascending eigenvalues
    return vectors[:, :, 0]


def geometric_segments(xyz: np.ndarray, rgb=None, **settings) -> np.ndarray:
    """Segment id (int64, -1 = none) of every point (see the module docstring for the rule).

    Args:
        xyz: (N, 3) coordinates in metres. rgb: (N, 3) colours in [0, 1] or [0, 255] (detected), or None.
        settings: overrides of :data:`DEFAULT_GEOMETRIC_CFG` (``voxel_size``, ``normal_knn``, ``graph_knn``,
            ``max_edge_length``, ``color_weight``, ``threshold``, ``min_segment_voxels``, ``min_segment_points``).
    """
    unknown = set(settings) - set(DEFAULT_GEOMETRIC_CFG)
    if unknown:
        raise KeyError(f'unknown geometric segment setting(s) {sorted(unknown)}; known: '
                       f'{sorted(DEFAULT_GEOMETRIC_CFG)}')
    cfg = dict(DEFAULT_GEOMETRIC_CFG, **settings)
    voxel_size, normal_knn, graph_knn = cfg['voxel_size'], cfg['normal_knn'], cfg['graph_knn']
    threshold, color_weight = cfg['threshold'], cfg['color_weight']
    from scipy.spatial import cKDTree
    xyz = np.asarray(xyz, np.float64)[:, :3]
    if len(xyz) == 0:
        return np.zeros(0, np.int64)
    if voxel_size <= 0 or normal_knn < 3 or graph_knn < 1 or threshold < 0:
        raise ValueError(f'geometric segments: need voxel_size > 0, normal_knn >= 3, graph_knn >= 1 and '
                         f'threshold >= 0, got {voxel_size}, {normal_knn}, {graph_knn}, {threshold}')
    voxel, num_voxels = voxelize(xyz, voxel_size)
    centres = _voxel_means(xyz, voxel, num_voxels)
    colors = None
    if rgb is not None and color_weight > 0:
        rgb = np.asarray(rgb, np.float64)[:, :3]
        colors = _voxel_means(rgb / 255.0 if rgb.max(initial=0) > 1.0 else rgb, voxel, num_voxels)
    k = min(max(normal_knn, graph_knn) + 1, num_voxels)
    dist, nbr = cKDTree(centres).query(centres, k=k, workers=-1)
    dist, nbr = dist.reshape(num_voxels, k), nbr.reshape(num_voxels, k)
    normals = estimate_normals(centres, nbr[:, :min(normal_knn, k)]) if k >= 3 else np.tile([0., 0., 1.],
                                                                                           (num_voxels, 1))
    g = min(graph_knn + 1, k)
    a = np.repeat(np.arange(num_voxels), g - 1)
    b = nbr[:, 1:g].ravel()
    keep = np.isfinite(dist[:, 1:g].ravel())
    if cfg['max_edge_length'] is not None:
        keep &= dist[:, 1:g].ravel() <= cfg['max_edge_length']
    a, b = a[keep], b[keep]
    keys = np.unique(np.minimum(a, b) * num_voxels + np.maximum(a, b))  # each undirected edge once
    pairs = np.stack([keys // num_voxels, keys % num_voxels], 1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    weight = 1.0 - np.abs(np.einsum('ij,ij->i', normals[pairs[:, 0]], normals[pairs[:, 1]]))
    if colors is not None:
        color_step = np.linalg.norm(colors[pairs[:, 0]] - colors[pairs[:, 1]], axis=1) / math.sqrt(3)
        weight = weight + color_weight * color_step
    root = felzenszwalb_segments(num_voxels, pairs, weight, threshold, cfg['min_segment_voxels'])
    return compact_segments(root[voxel], cfg['min_segment_points'])
