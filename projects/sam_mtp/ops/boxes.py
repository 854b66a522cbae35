"""3D box ops in pure PyTorch, matching mmcv's CUDA kernels.

Boxes are (x, y, z, dx, dy, dz, heading) with (x, y, z) the *bottom* centre
for the point-in-box tests (mmcv's LiDAR/Depth convention) and the BEV
footprint (x, y, dx, dy, heading) for the overlap / NMS functions.

The rotated BEV overlap follows the algorithm of mmcv's ``box_overlap``
kernel, vectorised over box pairs: intersections of the 4 x 4 edge pairs
(strict sign tests), plus the corners of each box lying in the other one
(with mmcv's 1 cm margin), sorted by angle around their mean and integrated
with a triangle fan. Keeping the same candidate points and order keeps the
areas equal to the kernel's up to float rounding, including its behaviour on
touching and identical boxes.
"""
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from ._utils import check_same_device, check_tensor

_EPS = 1e-8  # mmcv's EPS of the IoU denominators and of the line solver
_CORNER_MARGIN = 1e-2  # mmcv's margin of the corner-in-box test
_PAIRS_PER_CHUNK = 1 << 15


# ----------------------------------------------------------- points in boxes
def _points_in_boxes_mask(points: Tensor, boxes: Tensor) -> Tensor:
    """(B, M, T) bool: point m lies in box t (same tests as mmcv's
    ``check_pt_in_box3d``: |z - centre_z| <= dz / 2 inclusive, the rotated x/y
    extents exclusive)."""
    pts = points[:, :, None, :]  # (B, M, 1, 3)
    box = boxes[:, None, :, :]  # (B, 1, T, 7)
    size_x, size_y, size_z = box[..., 3], box[..., 4], box[..., 5]
    centre_z = box[..., 2] + size_z / 2
    inside_z = ~(torch.abs(pts[..., 2] - centre_z) > size_z / 2)
    shift_x = pts[..., 0] - box[..., 0]
    shift_y = pts[..., 1] - box[..., 1]
    cos_a, sin_a = torch.cos(-box[..., 6]), torch.sin(-box[..., 6])
    local_x = shift_x * cos_a + shift_y * (-sin_a)
    local_y = shift_x * sin_a + shift_y * cos_a
    return (inside_z & (local_x > -size_x / 2) & (local_x < size_x / 2) &
            (local_y > -size_y / 2) & (local_y < size_y / 2))


def _check_points_and_boxes(op: str, points: Tensor,
                            boxes: Tensor) -> Tuple[Tensor, Tensor]:
    check_tensor(op, 'points', points, 3, last_dim=3, floating=True)
    check_tensor(op, 'boxes', boxes, 3, last_dim=7, floating=True)
    check_same_device(op, points=points, boxes=boxes)
    if points.shape[0] != boxes.shape[0]:
        raise ValueError(f'{op}: points and boxes should have the same batch '
                         f'size, got {points.shape[0]} and {boxes.shape[0]}')
    return points, boxes.to(points.dtype)


def _point_chunks(num_points: int, num_boxes: int, batch: int):
    step = max(1, (1 << 22) // max(1, num_boxes * batch))
    for start in range(0, num_points, step):
        yield slice(start, min(num_points, start + step))


def points_in_boxes_part_torch(points: Tensor, boxes: Tensor) -> Tensor:
    """Same as ``mmcv.ops.points_in_boxes_part``.

    Args:
        points (Tensor): (B, M, 3) points.
        boxes (Tensor): (B, T, 7) boxes, bottom centre.

    Returns:
        Tensor: int32 (B, M), the lowest index of a box containing each point,
        -1 for none.
    """
    points, boxes = _check_points_and_boxes('points_in_boxes_part', points,
                                            boxes)
    batch, num_points, _ = points.shape
    num_boxes = boxes.shape[1]
    output = torch.full((batch, num_points),
                        -1,
                        dtype=torch.int32,
                        device=points.device)
    if num_boxes == 0:
        return output
    with torch.no_grad():
        for rows in _point_chunks(num_points, num_boxes, batch):
            inside = _points_in_boxes_mask(points[:, rows], boxes)
            first = inside.int().argmax(dim=2)  # first True (or 0)
            output[:, rows] = torch.where(
                inside.any(dim=2), first, torch.full_like(first, -1)).int()
    return output


def points_in_boxes_all_torch(points: Tensor, boxes: Tensor) -> Tensor:
    """Same as ``mmcv.ops.points_in_boxes_all`` (and ``points_in_boxes_cpu``).

    Args:
        points (Tensor): (B, M, 3) points.
        boxes (Tensor): (B, T, 7) boxes, bottom centre.

    Returns:
        Tensor: int32 (B, M, T), 1 where the point lies in the box, else 0.
    """
    points, boxes = _check_points_and_boxes('points_in_boxes_all', points,
                                            boxes)
    batch, num_points, _ = points.shape
    num_boxes = boxes.shape[1]
    output = torch.zeros(
        batch, num_points, num_boxes, dtype=torch.int32, device=points.device)
    if num_boxes == 0:
        return output
    with torch.no_grad():
        for rows in _point_chunks(num_points, num_boxes, batch):
            output[:, rows] = _points_in_boxes_mask(points[:, rows],
                                                    boxes).int()
    return output


# --------------------------------------------------------------- BEV overlap
def _cross(ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
    return ax * by - ay * bx


def _bev_corners(boxes: Tensor) -> Tuple[Tensor, Tensor]:
    """(P, 4) x and y of the rotated BEV corners, in mmcv's corner order and
    with its arithmetic (axis-aligned corners rotated about the centre)."""
    cx, cy = boxes[:, 0:1], boxes[:, 1:2]
    half_x, half_y = boxes[:, 3:4] / 2, boxes[:, 4:5] / 2
    x1, x2 = cx - half_x, cx + half_x
    y1, y2 = cy - half_y, cy + half_y
    xs = torch.cat([x1, x2, x2, x1], dim=1)
    ys = torch.cat([y1, y1, y2, y2], dim=1)
    cos_a, sin_a = torch.cos(boxes[:, 6:7]), torch.sin(boxes[:, 6:7])
    rx = (xs - cx) * cos_a - (ys - cy) * sin_a + cx
    ry = (xs - cx) * sin_a + (ys - cy) * cos_a + cy
    return rx, ry


def _corners_in_box(boxes: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """(P, 4) bool: corner (px, py) of the other box lies within ``boxes``
    (P, 7) enlarged by mmcv's margin."""
    cx, cy = boxes[:, 0:1], boxes[:, 1:2]
    cos_a, sin_a = torch.cos(-boxes[:, 6:7]), torch.sin(-boxes[:, 6:7])
    rot_x = (px - cx) * cos_a + (py - cy) * (-sin_a)
    rot_y = (px - cx) * sin_a + (py - cy) * cos_a
    return ((torch.abs(rot_x) < boxes[:, 3:4] / 2 + _CORNER_MARGIN) &
            (torch.abs(rot_y) < boxes[:, 4:5] / 2 + _CORNER_MARGIN))


def _edge_intersections(ax: Tensor, ay: Tensor, bx: Tensor,
                        by: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Intersections of edge i of box a with edge j of box b.

    Args:
        ax, ay, bx, by (Tensor): (P, 4) corners.

    Returns:
        tuple[Tensor]: x, y and validity, each (P, 16) ordered i-major.
    """
    # Edge i of a runs p0 -> p1, edge j of b runs q0 -> q1.
    p0x, p0y = ax[:, :, None], ay[:, :, None]
    p1x, p1y = ax.roll(-1, 1)[:, :, None], ay.roll(-1, 1)[:, :, None]
    q0x, q0y = bx[:, None, :], by[:, None, :]
    q1x, q1y = bx.roll(-1, 1)[:, None, :], by.roll(-1, 1)[:, None, :]
    # Bounding rectangles of the two segments must overlap.
    boxes_cross = ((torch.minimum(p0x, p1x) <= torch.maximum(q0x, q1x)) &
                   (torch.minimum(q0x, q1x) <= torch.maximum(p0x, p1x)) &
                   (torch.minimum(p0y, p1y) <= torch.maximum(q0y, q1y)) &
                   (torch.minimum(q0y, q1y) <= torch.maximum(p0y, p1y)))
    s1 = _cross(q0x - p0x, q0y - p0y, p1x - p0x, p1y - p0y)
    s2 = _cross(p1x - p0x, p1y - p0y, q1x - p0x, q1y - p0y)
    s3 = _cross(p0x - q0x, p0y - q0y, q1x - q0x, q1y - q0y)
    s4 = _cross(q1x - q0x, q1y - q0y, p1x - q0x, p1y - q0y)
    valid = boxes_cross & (s1 * s2 > 0) & (s3 * s4 > 0)
    s5 = _cross(q1x - p0x, q1y - p0y, p1x - p0x, p1y - p0y)
    denom = s5 - s1
    safe = torch.where(denom == 0, torch.ones_like(denom), denom)
    x_main = (s5 * q0x - s1 * q1x) / safe
    y_main = (s5 * q0y - s1 * q1y) / safe
    # Nearly parallel segments: mmcv solves the two line equations instead.
    a0, b0 = p0y - p1y, p1x - p0x
    c0 = p0x * p1y - p1x * p0y
    a1, b1 = q0y - q1y, q1x - q0x
    c1 = q0x * q1y - q1x * q0y
    det = a0 * b1 - a1 * b0
    safe_det = torch.where(det == 0, torch.ones_like(det), det)
    x_line = (b0 * c1 - b1 * c0) / safe_det
    y_line = (a1 * c0 - a0 * c1) / safe_det
    use_main = torch.abs(s5 - s1) > _EPS
    x = torch.where(use_main, x_main, x_line)
    y = torch.where(use_main, y_main, y_line)
    return x.flatten(1), y.flatten(1), valid.flatten(1)


def _paired_bev_overlap(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """BEV intersection area of ``boxes_a[p]`` and ``boxes_b[p]``.

    Args:
        boxes_a, boxes_b (Tensor): (P, 7).

    Returns:
        Tensor: (P,) areas.
    """
    ax, ay = _bev_corners(boxes_a)
    bx, by = _bev_corners(boxes_b)
    ix, iy, i_valid = _edge_intersections(ax, ay, bx, by)
    b_in_a = _corners_in_box(boxes_a, bx, by)
    a_in_b = _corners_in_box(boxes_b, ax, ay)
    # Candidate order of the kernel: 16 intersections, then for each k the
    # corner k of b (if in a) followed by the corner k of a (if in b).
    corner_x = torch.stack([bx, ax], dim=2).flatten(1)
    corner_y = torch.stack([by, ay], dim=2).flatten(1)
    corner_valid = torch.stack([b_in_a, a_in_b], dim=2).flatten(1)
    px = torch.cat([ix, corner_x], dim=1)  # (P, 24)
    py = torch.cat([iy, corner_y], dim=1)
    valid = torch.cat([i_valid, corner_valid], dim=1)
    count = valid.sum(dim=1, keepdim=True)
    safe_count = count.clamp(min=1).to(px.dtype)
    # ``where`` rather than a 0/1 weight: the coordinates of rejected
    # candidates may be inf (near-parallel edges) and inf * 0 is nan.
    zero = torch.zeros_like(px)
    centre_x = torch.where(valid, px, zero).sum(
        dim=1, keepdim=True) / safe_count
    centre_y = torch.where(valid, py, zero).sum(
        dim=1, keepdim=True) / safe_count
    # The kernel bubble-sorts by angle ascending (stable); invalid candidates
    # go last.
    angle = torch.atan2(py - centre_y, px - centre_x)
    angle = torch.where(valid, angle, torch.full_like(angle, float('inf')))
    order = angle.argsort(dim=1, stable=True)
    px, py = px.gather(1, order), py.gather(1, order)
    # Triangle fan from the first vertex over consecutive vertex pairs.
    ex, ey = px - px[:, :1], py - py[:, :1]
    fan = _cross(ex[:, :-1], ey[:, :-1], ex[:, 1:], ey[:, 1:])
    in_polygon = torch.arange(1, px.shape[1], device=px.device) < count
    area = torch.where(in_polygon, fan, torch.zeros_like(fan)).sum(dim=1)
    return torch.abs(area) / 2


def _pairwise(fn, boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Evaluate the pair function ``fn`` on all (M, N) pairs in chunks."""
    num_a, num_b = boxes_a.shape[0], boxes_b.shape[0]
    output = boxes_a.new_zeros((num_a, num_b))
    if num_a == 0 or num_b == 0:
        return output
    rows_per_chunk = max(1, _PAIRS_PER_CHUNK // num_b)
    for start in range(0, num_a, rows_per_chunk):
        rows = boxes_a[start:start + rows_per_chunk]
        pair_a = rows[:, None].expand(-1, num_b, -1).reshape(-1, 7)
        pair_b = boxes_b[None].expand(rows.shape[0], -1, -1).reshape(-1, 7)
        output[start:start + rows.shape[0]] = fn(pair_a, pair_b).view(
            rows.shape[0], num_b)
    return output


def _check_boxes(op: str, name: str, boxes: Tensor) -> Tensor:
    check_tensor(op, name, boxes, 2, last_dim=7, floating=True)
    return boxes


def boxes_overlap_bev_torch(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Same as ``mmcv.ops.boxes_overlap_bev``: (M, N) rotated BEV
    intersection areas of (M, 7) and (N, 7) boxes."""
    op = 'boxes_overlap_bev'
    _check_boxes(op, 'boxes_a', boxes_a)
    _check_boxes(op, 'boxes_b', boxes_b)
    check_same_device(op, boxes_a=boxes_a, boxes_b=boxes_b)
    with torch.no_grad():
        return _pairwise(_paired_bev_overlap, boxes_a,
                         boxes_b.to(boxes_a.dtype))


def boxes_iou3d_torch(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Same as ``mmcv.ops.boxes_iou3d``: (M, N) 3D IoU of rotated boxes whose
    z is the *gravity* centre there (mmcv's formula: z +- dz / 2)."""
    op = 'boxes_iou3d'
    _check_boxes(op, 'boxes_a', boxes_a)
    _check_boxes(op, 'boxes_b', boxes_b)
    overlap_bev = boxes_overlap_bev_torch(boxes_a, boxes_b)
    boxes_b = boxes_b.to(boxes_a.dtype)
    top_a = (boxes_a[:, 2] + boxes_a[:, 5] / 2).view(-1, 1)
    bottom_a = (boxes_a[:, 2] - boxes_a[:, 5] / 2).view(-1, 1)
    top_b = (boxes_b[:, 2] + boxes_b[:, 5] / 2).view(1, -1)
    bottom_b = (boxes_b[:, 2] - boxes_b[:, 5] / 2).view(1, -1)
    overlap_h = torch.clamp(
        torch.min(top_a, top_b) - torch.max(bottom_a, bottom_b), min=0)
    overlap_3d = overlap_bev * overlap_h
    vol_a = (boxes_a[:, 3] * boxes_a[:, 4] * boxes_a[:, 5]).view(-1, 1)
    vol_b = (boxes_b[:, 3] * boxes_b[:, 4] * boxes_b[:, 5]).view(1, -1)
    return overlap_3d / torch.clamp(vol_a + vol_b - overlap_3d, min=1e-6)


def _paired_bev_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    overlap = _paired_bev_overlap(boxes_a, boxes_b)
    area_a = boxes_a[:, 3] * boxes_a[:, 4]
    area_b = boxes_b[:, 3] * boxes_b[:, 4]
    return overlap / torch.clamp(area_a + area_b - overlap, min=_EPS)


def _paired_normal_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Axis-aligned BEV IoU ignoring the heading (mmcv's ``iou_normal``)."""
    left = torch.maximum(boxes_a[:, 0] - boxes_a[:, 3] / 2,
                         boxes_b[:, 0] - boxes_b[:, 3] / 2)
    right = torch.minimum(boxes_a[:, 0] + boxes_a[:, 3] / 2,
                          boxes_b[:, 0] + boxes_b[:, 3] / 2)
    top = torch.maximum(boxes_a[:, 1] - boxes_a[:, 4] / 2,
                        boxes_b[:, 1] - boxes_b[:, 4] / 2)
    bottom = torch.minimum(boxes_a[:, 1] + boxes_a[:, 4] / 2,
                           boxes_b[:, 1] + boxes_b[:, 4] / 2)
    inter = (
        torch.clamp(right - left, min=0) * torch.clamp(bottom - top, min=0))
    area_a = boxes_a[:, 3] * boxes_a[:, 4]
    area_b = boxes_b[:, 3] * boxes_b[:, 4]
    return inter / torch.clamp(area_a + area_b - inter, min=_EPS)


def bev_iou_torch(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(M, N) rotated BEV IoU as used by ``nms3d`` (mmcv's ``iou_bev``)."""
    return _pairwise(_paired_bev_iou, boxes_a, boxes_b.to(boxes_a.dtype))


def _greedy_nms(suppresses: Tensor) -> Tensor:
    """Greedy NMS over boxes already sorted by score.

    Args:
        suppresses (Tensor): (N, N) bool, ``[i, j]``: keeping box i removes
            box j (only j > i is read).

    Returns:
        Tensor: int64 positions of the kept boxes, ascending.
    """
    matrix = torch.triu(suppresses, diagonal=1).cpu().numpy()
    removed = np.zeros(matrix.shape[0], dtype=bool)
    keep = []
    # Sequential by nature: whether box i survives depends on the earlier
    # kept boxes. One row update per kept box, not per pair.
    for i in range(matrix.shape[0]):
        if not removed[i]:
            keep.append(i)
            removed |= matrix[i]
    return torch.tensor(keep, dtype=torch.long, device=suppresses.device)


def _nms(op: str, pair_iou, boxes: Tensor, scores: Tensor,
         iou_threshold: float) -> Tensor:
    _check_boxes(op, 'boxes', boxes)
    check_tensor(op, 'scores', scores, 1)
    check_same_device(op, boxes=boxes, scores=scores)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f'{op}: `scores` must have one entry per box, got '
                         f'{scores.shape[0]} scores for {boxes.shape[0]} '
                         'boxes')
    with torch.no_grad():
        order = scores.sort(0, descending=True)[1]
        # The kernels compute in float32.
        sorted_boxes = boxes[order].float()
        iou = _pairwise(pair_iou, sorted_boxes, sorted_boxes)
        keep = _greedy_nms(iou > float(iou_threshold))
        return order[keep].contiguous()


def nms3d_torch(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Same as ``mmcv.ops.nms3d``: greedy NMS with the rotated BEV IoU of
    (N, 7) boxes; returns int64 indices of the kept boxes by descending
    score. A box is removed when its IoU with a kept one is > threshold."""
    return _nms('nms3d', _paired_bev_iou, boxes, scores, iou_threshold)


def nms3d_normal_torch(boxes: Tensor, scores: Tensor,
                       iou_threshold: float) -> Tensor:
    """Same as ``mmcv.ops.nms3d_normal``: greedy NMS with the axis-aligned
    BEV IoU (heading ignored) of (N, 7) boxes."""
    return _nms('nms3d_normal', _paired_normal_iou, boxes, scores,
                iou_threshold)
