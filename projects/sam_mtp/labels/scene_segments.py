"""Scene-level SAM segments for reconstructed scenes (fine-tuning inputs, spec §8 Q1).

Per-frame SAM regions are lifted to the scene's points and merged across views:

1. **Visibility.** Every scene point (raw ScanNet frame, i.e. the frame of the poses, before axis alignment)
   is projected into each labelled frame's depth camera. It is visible when it lands inside the image in front
   of the camera and ``|z_point - depth(pixel)| < depth_tolerance``. A visible point takes the region id of its
   colour pixel in the frame's region map (0 = seen but in no region).
2. **Nodes.** Each (frame, region) pair with at least one visible point is a node with point set S.
3. **Links.** Two nodes a, b of different frames are linked when they overlap on the points both frames see:
   ``IoU = |S_a ∩ S_b| / |(S_a ∩ V_b) ∪ (S_b ∩ V_a)|`` (V_f = points visible in frame f) is at least
   ``iou_threshold`` and they share at least ``min_shared_points`` points. Restricting the union to points seen
   in both frames keeps partial views of one object mergeable while two objects seen together stay apart.
4. **Segments.** Connected components of the link graph (union-find) are the 3D segments. Each point takes the
   segment with the largest vote over its nodes, a node voting with weight 1 / (its point count): when views
   disagree, a specific (small) region outweighs a coarse one, as the smaller mask wins in 2D (ties: the lowest
   segment number). Points seen in no region get -1 ("none"), as do points of segments with fewer than
   ``min_segment_points`` points. Segment ids are 0..S-1, numbered in order of their lowest point index.

Limits: an under-segmented view (one SAM mask over two objects) links to both objects' regions when its IoU
with each passes the threshold and then merges them; ``iou_threshold`` (default 0.7) trades this against
failing to merge partial views of one object. It is a setting worth ablating on real data.

Everything is vectorised with scipy sparse matrices; the only loop is over frames.
"""
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .fileio import atomic_write_bytes
from .frames import scale_intrinsic
from .geometry import project_points, transform_points


@dataclass
class SegmentView:
    """What scene segmentation needs from one labelled frame."""
    depth: np.ndarray            # (Hd, Wd) metres, 0 = invalid
    pose: np.ndarray             # 4x4 camera-to-world (raw scene frame)
    intrinsic_depth: np.ndarray  # 3x3
    intrinsic_color: np.ndarray  # 3x3, for the colour image size below
    color_hw: tuple              # (H, W) of the colour image the intrinsics refer to
    region_map: np.ndarray       # (Hm, Wm) int region ids of the colour image resized to (Hm, Wm)
    extrinsic_color: Optional[np.ndarray] = None
    extrinsic_depth: Optional[np.ndarray] = None


def visible_regions(points: np.ndarray, view: SegmentView, depth_tolerance: float):
    """Indices of the scene points visible in ``view`` and their region ids (0 = no region)."""
    eye = np.eye(4)
    ext_d = eye if view.extrinsic_depth is None else view.extrinsic_depth
    ext_c = eye if view.extrinsic_color is None else view.extrinsic_color
    cam = transform_points(points, np.linalg.inv(view.pose @ ext_d))
    row, col, inside = project_points(cam, view.intrinsic_depth, view.depth.shape)
    measured = view.depth[row, col]
    visible = inside & (measured > 0) & (np.abs(cam[:, 2] - measured) < depth_tolerance)
    idx = np.flatnonzero(visible)
    cam = cam[idx]
    depth_to_color = np.linalg.inv(ext_c) @ ext_d
    if not np.allclose(depth_to_color, eye):
        cam = transform_points(cam, depth_to_color)
    k_mask = scale_intrinsic(view.intrinsic_color, view.color_hw, view.region_map.shape)
    mrow, mcol, in_mask = project_points(cam, k_mask, view.region_map.shape)
    region = np.where(in_mask, view.region_map[mrow, mcol], 0).astype(np.int64)
    return idx, region


def merge_scene_segments(num_points: int, visible: Sequence[np.ndarray], regions: Sequence[np.ndarray],
                         iou_threshold: float = 0.7, min_shared_points: int = 5,
                         min_segment_points: int = 1) -> np.ndarray:
    """Merge per-view region observations into scene segments (see the module docstring).

    Args:
        num_points: number of scene points M.
        visible: per view, indices of the visible points.
        regions: per view, region id of each visible point (0 = none), same length as ``visible[i]``.

    Returns:
        (M,) int64 segment ids, -1 = none.
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components
    num_views = len(visible)
    labels = -np.ones(num_points, np.int64)
    if num_views == 0:
        return labels
    # Nodes: (view, region) pairs; node id = offset[view] + region - 1.
    max_region = np.array([r.max() if r.size else 0 for r in regions], np.int64)
    offset = np.concatenate([[0], np.cumsum(max_region)])
    num_nodes = int(offset[-1])
    if num_nodes == 0:
        return labels
    view_of_node = np.repeat(np.arange(num_views), max_region)
    vis_points = np.concatenate(visible)
    vis_views = np.repeat(np.arange(num_views), [len(v) for v in visible])
    all_regions = np.concatenate(regions)
    in_region = all_regions > 0
    node_points = vis_points[in_region]
    nodes = offset[vis_views[in_region]] + all_regions[in_region] - 1
    ones = np.ones(len(node_points), np.float64)
    incidence = sparse.csr_matrix((ones, (node_points, nodes)), shape=(num_points, num_nodes))
    seen = sparse.csr_matrix((np.ones(len(vis_points)), (vis_points, vis_views)), shape=(num_points, num_views))
    shared = sparse.triu(incidence.T @ incidence, k=1).tocoo()  # |S_a ∩ S_b| for a < b
    a, b, inter = shared.row, shared.col, shared.data
    seen_by_view = (incidence.T @ seen).toarray() if num_nodes * num_views <= 5e7 else None
    if seen_by_view is not None:
        a_in_b, b_in_a = seen_by_view[a, view_of_node[b]], seen_by_view[b, view_of_node[a]]
    else:  # very large scenes: look the needed entries up in the sparse product
        sv = (incidence.T @ seen).tocsr()
        a_in_b = np.asarray(sv[a, view_of_node[b]]).ravel()
        b_in_a = np.asarray(sv[b, view_of_node[a]]).ravel()
    union = a_in_b + b_in_a - inter
    iou = inter / np.maximum(union, 1)
    link = (iou >= iou_threshold) & (inter >= min_shared_points) & (view_of_node[a] != view_of_node[b])
    graph = sparse.csr_matrix((np.ones(int(link.sum())), (a[link], b[link])), shape=(num_nodes, num_nodes))
    _, component = connected_components(graph, directed=False)
    num_components = int(component.max()) + 1
    node_size = np.asarray(incidence.sum(0)).ravel()
    votes = incidence @ sparse.csr_matrix(
        (1.0 / np.maximum(node_size, 1), (np.arange(num_nodes), component)), shape=(num_nodes, num_components))
    votes = votes.tocsr()
    has_vote = np.diff(votes.indptr) > 0
    winner = np.asarray(votes.argmax(axis=1)).ravel()
    labels[has_vote] = winner[has_vote]
    if min_segment_points > 1:
        sizes = np.bincount(labels[labels >= 0], minlength=num_components)
        labels[(labels >= 0) & (sizes[np.maximum(labels, 0)] < min_segment_points)] = -1
    assigned = labels >= 0
    used, first, compact = np.unique(labels[assigned], return_index=True, return_inverse=True)
    rank = np.empty(len(used), np.int64)
    rank[np.argsort(first, kind='stable')] = np.arange(len(used))  # number segments by their first point
    labels[assigned] = rank[compact]
    return labels


def scene_segments(points: np.ndarray, views: List[SegmentView], depth_tolerance: float = 0.1,
                   iou_threshold: float = 0.7, min_shared_points: int = 5, min_segment_points: int = 1) -> np.ndarray:
    """Segment id (int64, -1 = none) of every scene point from the labelled views of the scene."""
    points = np.asarray(points, np.float32)[:, :3]
    visible, regions = [], []
    for view in views:  # loop over frames only; each projection is vectorised over points
        idx, reg = visible_regions(points, view, depth_tolerance)
        visible.append(idx)
        regions.append(reg)
    return merge_scene_segments(len(points), visible, regions, iou_threshold, min_shared_points, min_segment_points)


def save_scene_segments(path: str, labels: np.ndarray) -> None:
    """Atomically write segment ids as raw int64 (like mmdet3d's ``instance_mask/<scene>.bin``)."""
    atomic_write_bytes(path, np.ascontiguousarray(labels, np.int64).tobytes())


def load_scene_segments(path: str, num_points: Optional[int] = None) -> np.ndarray:
    """Read a segment file; with ``num_points`` the length is checked (error names the file)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: scene segment file does not exist')
    size = os.path.getsize(path)
    if size % 8:
        raise ValueError(f'{path}: size {size} is not a multiple of 8 (expected raw int64)')
    labels = np.fromfile(path, np.int64)
    if num_points is not None and len(labels) != num_points:
        raise ValueError(f'{path}: has {len(labels)} segment ids but the scene has {num_points} points')
    return labels


DEFAULT_SEGMENT_CFG = dict(depth_tolerance=0.1, iou_threshold=0.7, min_shared_points=5, min_segment_points=1,
                           points_load_dim=6)


def load_scene_points(path: str, load_dim: int = 6) -> np.ndarray:
    """xyz (M, 3) of an mmdet3d ``points/<scene>.bin`` (float32, ``load_dim`` values per point)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: scene point file does not exist')
    raw = np.fromfile(path, np.float32)
    if raw.size % load_dim:
        raise ValueError(f'{path}: {raw.size} floats is not a multiple of points_load_dim={load_dim}')
    return raw.reshape(-1, load_dim)[:, :3]


def _image_hw(path: str):
    from PIL import Image
    with Image.open(path) as im:
        return im.height, im.width


def scene_views(records, region_map_path, depth_scale: float = 1000.0) -> List[SegmentView]:
    """SegmentViews of a scene's labelled frames (frames without pose or region map are left out)."""
    from .frames import FrameError, load_scene_cameras, read_depth, read_pose
    from .generation import read_region_map
    views = []
    for record in records:
        try:
            pose = read_pose(record.pose_path)
        except FrameError:
            continue
        path = region_map_path(record)
        if not os.path.isfile(path):
            continue
        depth = read_depth(record.depth_path, depth_scale)
        cams = load_scene_cameras(record.scene_dir, record.layout)
        color_hw = _image_hw(record.color_path)
        k_depth = cams.intrinsic_depth if cams.intrinsic_depth is not None else scale_intrinsic(
            cams.intrinsic_color, color_hw, depth.shape)
        views.append(SegmentView(depth, pose, k_depth, cams.intrinsic_color, color_hw, read_region_map(path),
                                 cams.extrinsic_color, cams.extrinsic_depth))
    return views


def default_segments_dir(points_root: str) -> str:
    """``scene_segments`` next to the points folder: where ``LoadSceneSegments`` looks by default."""
    return os.path.join(os.path.dirname(os.path.normpath(points_root)), 'scene_segments')


def generate_scene_segments(out_dir: str, records, points_root: str, segment_cfg: Optional[dict] = None,
                            shard=(0, 1), depth_scale: float = 1000.0, overwrite: bool = False,
                            segments_dir: Optional[str] = None) -> dict:
    """Scene segments of every scene in ``records`` owned by ``shard`` (sharded by scene name).

    Reads the region maps written by the label generation under ``out_dir`` and the scene points
    ``<points_root>/<scene>.bin``; writes ``<segments_dir>/<scene>.bin`` (default:
    :func:`default_segments_dir`, e.g. ``data/scannet/scene_segments`` for ``data/scannet/points``). Finished
    scenes (a segment file with one id per scene point) are skipped unless ``overwrite``. Returns
    {scene: number of segments} of the scenes processed.
    """
    from mmengine.logging import print_log

    from .generation import LabelPaths
    from .sharding import shard_of
    cfg = dict(DEFAULT_SEGMENT_CFG)
    unknown = set(segment_cfg or {}) - set(cfg)
    if unknown:
        raise KeyError(f'unknown scene segment setting(s) {sorted(unknown)}; known: {sorted(cfg)}')
    cfg.update(segment_cfg or {})
    paths = LabelPaths(out_dir)
    by_scene = {}
    for r in records:
        by_scene.setdefault(r.scene, []).append(r)
    summary = {}
    for scene in sorted(by_scene):
        if shard_of(scene, shard[1]) != shard[0]:
            continue
        points = load_scene_points(os.path.join(points_root, f'{scene}.bin'), cfg['points_load_dim'])
        out = os.path.join(segments_dir or default_segments_dir(points_root), f'{scene}.bin')
        if not overwrite and os.path.isfile(out) and os.path.getsize(out) == 8 * len(points):
            continue
        views = scene_views(by_scene[scene], lambda r: paths.region_map(r.scene, r.frame_id), depth_scale)
        labels = scene_segments(points, views, cfg['depth_tolerance'], cfg['iou_threshold'],
                                cfg['min_shared_points'], cfg['min_segment_points'])
        save_scene_segments(out, labels)
        summary[scene] = int(labels.max()) + 1
        print_log(f'{scene}: {summary[scene]} segments from {len(views)} views, '
                  f'{(labels >= 0).mean():.1%} of {len(points)} points assigned', logger='current')
    return summary
