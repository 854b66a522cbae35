"""Scene segments of posed RGB-D frames: per-frame SAM regions merged across views onto the scene's points.

The paper does not say how SAM masks reach the reconstructed scenes of fine-tuning (docs/finetune.md, "Scene
segments"); this is the merge used for ScanNet, Stanford 2D-3D-S and custom posed frames
(``segmenters.PosedFramesSegmenter``, ``segmenters.S3DIS2D3DSSegmenter``). The file it feeds is described in
labels/formats/scene_segments.py.

The merge:

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
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from ..formats.frames import FrameError, load_scene_cameras, read_depth, read_pose, scale_intrinsic
from ..formats.scene_segments import compact_segments
from ..geometry import project_points, transform_points


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
    return compact_segments(labels, min_segment_points)


def scene_segments(points: np.ndarray, views: Iterable[SegmentView], depth_tolerance: float = 0.1,
                   iou_threshold: float = 0.7, min_shared_points: int = 5, min_segment_points: int = 1) -> np.ndarray:
    """Segment id (int64, -1 = none) of every scene point from the labelled views of the scene.

    ``views`` may be a generator: each view is used once and can be dropped afterwards, so a room with hundreds
    of full-HD frames never holds them all in memory."""
    points = np.asarray(points, np.float32)[:, :3]
    visible, regions = [], []
    for view in views:  # loop over frames only; each projection is vectorised over points
        idx, reg = visible_regions(points, view, depth_tolerance)
        visible.append(idx)
        regions.append(reg)
    return merge_scene_segments(len(points), visible, regions, iou_threshold, min_shared_points, min_segment_points)


def _image_hw(path: str):
    from PIL import Image
    with Image.open(path) as im:
        return im.height, im.width


def posed_frame_views(records, region_map_for: Callable, depth_scale: float = 1000.0,
                      skipped: Optional[list] = None) -> Iterator[SegmentView]:
    """SegmentViews of a scene's posed frames (export or flat layout, labels/formats/frames.py), one at a time.

    ``region_map_for(record)`` returns the frame's region map, or None to leave the frame out (e.g. no map was
    made for it). Frames without a usable pose or depth are left out; with ``skipped`` a list, their
    ``FrameError`` messages are appended to it.
    """
    for record in records:
        try:
            pose = read_pose(record.pose_path)
            region_map = region_map_for(record)
            if region_map is None:
                continue
            depth = read_depth(record.depth_path, depth_scale)
        except FrameError as err:
            if skipped is not None:
                skipped.append(str(err))
            continue
        cams = load_scene_cameras(record.scene_dir, record.layout)
        color_hw = _image_hw(record.color_path)
        k_depth = cams.intrinsic_depth if cams.intrinsic_depth is not None else scale_intrinsic(
            cams.intrinsic_color, color_hw, depth.shape)
        yield SegmentView(depth, pose, k_depth, cams.intrinsic_color, color_hw, region_map,
                          cams.extrinsic_color, cams.extrinsic_depth)
