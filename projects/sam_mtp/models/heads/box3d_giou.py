"""Generalised IoU of gravity-aligned 3D boxes, differentiable, pure torch.

Boxes are ``(x, y, z, dx, dy, dz[, yaw])`` with ``(x, y, z)`` the gravity (volume) centre and ``yaw`` the
counter-clockwise rotation about +z, the convention of mmdet3d's ``DepthInstance3DBoxes`` once converted with
``gravity_center``. Boxes rotate only about z, so a 3D overlap is a bird's-eye-view (BEV) polygon overlap times a
z-interval overlap.

* Axis-aligned boxes (``rotated=False``): closed form, exact.
* Rotated boxes (``rotated=True``): the IoU is exact as well. The BEV intersection of two rectangles is the
  convex polygon spanned by the corners of each rectangle that lie inside the other one plus the pairwise edge
  crossings; its area is taken with the shoelace formula after ordering those points by angle around their mean.

The enclosing volume of the GIoU penalty is, with ``enclosing='aligned'`` (default; 3DETR's definition and the
usual one for axis-aligned boxes), the world-axis-aligned box around both boxes. ``enclosing='hull'`` uses the
convex hull of the eight BEV corners (gift wrapping, at most eight steps) times the enclosing z-interval: the
smallest enclosing gravity-aligned prism. Only the hull gives GIoU = 1 for identical *rotated* boxes and is
unchanged when both boxes rotate together about z; the aligned box penalises a rotated box even against itself,
so use ``'hull'`` when headings are learnt. The mode means the same on both paths, so for yaw = 0 the rotated
path equals the closed form.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ['box3d_bev_corners', 'iou_3d', 'giou_3d', 'box3d_overlap_terms']

ENCLOSING_MODES = ('aligned', 'hull')

# Corners of the unit square in counter-clockwise order; scaled by half sizes and rotated below.
_UNIT_SQUARE_CCW = ((0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5))


def _check_boxes(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f'box3d_giou: {name} must be a torch.Tensor, got {type(boxes).__name__}')
    if boxes.dim() != 2 or boxes.shape[-1] not in (6, 7):
        raise ValueError(f'box3d_giou: {name} must have shape (N, 6) or (N, 7) '
                         f'(x, y, z, dx, dy, dz[, yaw]), got {tuple(boxes.shape)}')


def box3d_bev_corners(boxes: Tensor) -> Tensor:
    """Counter-clockwise BEV corners of boxes ``(N, 6|7)`` -> ``(N, 4, 2)``."""
    unit = boxes.new_tensor(_UNIT_SQUARE_CCW)                       # (4, 2)
    local = unit[None] * boxes[:, None, 3:5]                        # (N, 4, 2)
    if boxes.shape[-1] == 7:
        cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (N, 2, 2)
        local = torch.einsum('nij,nkj->nki', rot, local)
    return local + boxes[:, None, :2]


def _cross2d(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _inside_convex(points: Tensor, poly: Tensor, area_tol: Tensor) -> Tensor:
    """Whether ``points (K, P, 2)`` lie inside (or on) the CCW convex polygons ``poly (K, V, 2)``.

    ``area_tol (K,)`` is the cross-product slack (units of area) that still counts as "on the edge".
    """
    edges = torch.roll(poly, -1, dims=1) - poly                     # (K, V, 2)
    rel = points[:, :, None, :] - poly[:, None, :, :]               # (K, P, V, 2)
    return (_cross2d(edges[:, None], rel) >= -area_tol[:, None, None]).all(dim=-1)


def _edge_crossings(poly_a: Tensor, poly_b: Tensor, area_tol: Tensor,
                    param_tol: float = 1e-5) -> Tuple[Tensor, Tensor]:
    """Crossing points of every edge of ``poly_a`` with every edge of ``poly_b`` -> ``(K, Va*Vb, 2)``, valid."""
    da = torch.roll(poly_a, -1, dims=1) - poly_a                    # (K, Va, 2)
    db = torch.roll(poly_b, -1, dims=1) - poly_b                    # (K, Vb, 2)
    denom = _cross2d(da[:, :, None], db[:, None])                   # (K, Va, Vb)
    offset = poly_b[:, None] - poly_a[:, :, None]                   # (K, Va, Vb, 2)
    nonparallel = denom.abs() > area_tol[:, None, None]
    # Parallel edges get a dummy denominator so that neither the value nor its gradient becomes inf/NaN.
    safe = torch.where(nonparallel, denom, torch.ones_like(denom))
    t = _cross2d(offset, db[:, None]) / safe
    u = _cross2d(offset, da[:, :, None]) / safe
    valid = (nonparallel & (t >= -param_tol) & (t <= 1 + param_tol)
             & (u >= -param_tol) & (u <= 1 + param_tol))
    points = poly_a[:, :, None] + t[..., None] * da[:, :, None]
    return points.flatten(1, 2), valid.flatten(1, 2)


def _convex_area_from_points(points: Tensor, valid: Tensor) -> Tensor:
    """Area of the convex polygon whose vertices are the valid rows of ``points (K, P, 2)`` (any order).

    All valid points must be on the boundary of a convex polygon (true for the intersection candidates), so
    sorting them by angle around their mean orders them along the boundary.
    """
    num_valid = valid.sum(dim=1)
    with torch.no_grad():
        weights = valid.to(points.dtype)
        mean = (points * weights[..., None]).sum(1) / weights.sum(1).clamp(min=1)[:, None]
        rel = points - mean[:, None]
        angle = torch.atan2(rel[..., 1], rel[..., 0])
        angle = torch.where(valid, angle, torch.full_like(angle, 10.0))  # invalid points sort last
        order = angle.argsort(dim=1)
        valid_sorted = torch.gather(valid, 1, order)
    ordered = torch.gather(points, 1, order[..., None].expand_as(points))
    # Invalid points repeat the first vertex: zero-length edges add nothing to the shoelace sum.
    ordered = torch.where(valid_sorted[..., None], ordered, ordered[:, :1].expand_as(ordered))
    area = 0.5 * _cross2d(ordered, torch.roll(ordered, -1, dims=1)).sum(1)
    return torch.where(num_valid >= 3, area.abs(), torch.zeros_like(area))


def _convex_hull_area(points: Tensor, eps: float) -> Tensor:
    """Area of the convex hull of ``points (K, P, 2)`` by a batched gift-wrapping walk of at most P steps."""
    num_pairs, num_points = points.shape[:2]
    arange = torch.arange(num_pairs, device=points.device)
    with torch.no_grad():
        # The lexicographically smallest point (min x, then min y) is always a hull vertex.
        xmin = points[..., 0].min(dim=1, keepdim=True).values
        on_left = (points[..., 0] - xmin) <= eps * (1.0 + xmin.abs())
        key = torch.where(on_left, points[..., 1], torch.full_like(points[..., 1], float('inf')))
        start = key.argmin(dim=1)
        hull_idx = [start]
        current = start
        done = torch.zeros(num_pairs, dtype=torch.bool, device=points.device)
        dones = []
        for _ in range(num_points):
            p = points[arange, current]                                 # (K, 2)
            to_q = points - p[:, None]                                  # (K, P, 2)
            # cross[k, q, r] >= 0: r lies left of (or on) the directed line p->q, as needed for a CCW hull edge.
            cross = _cross2d(to_q[:, :, None, :], to_q[:, None, :, :])  # (K, P, P)
            violation = (-cross).clamp(min=0).amax(dim=2)               # (K, P)
            dist = to_q.norm(dim=-1)
            scale = dist.amax(dim=1, keepdim=True).clamp(min=eps)
            is_self = dist <= eps * scale
            ok = (violation <= eps * scale * scale) & ~is_self
            farthest = torch.where(ok, dist, torch.full_like(dist, -1.0)).argmax(dim=1)
            least_bad = torch.where(is_self, torch.full_like(violation, float('inf')), violation).argmin(dim=1)
            nxt = torch.where(ok.any(dim=1), farthest, least_bad)
            dones.append(done.clone())
            done = done | (nxt == start)
            hull_idx.append(nxt)
            current = nxt
    idx = torch.stack(hull_idx, dim=1)                                  # (K, P+1)
    verts = torch.gather(points, 1, idx[..., None].expand(-1, -1, 2))
    edge_terms = _cross2d(verts[:, :-1], verts[:, 1:])                  # (K, P)
    active = ~torch.stack(dones, dim=1)
    return 0.5 * (edge_terms * active).sum(dim=1).abs()


def box3d_overlap_terms(boxes1: Tensor, boxes2: Tensor, rotated: bool,
                        enclosing: str = 'aligned') -> Tuple[Tensor, Tensor, Tensor]:
    """Intersection, union and enclosing volumes of aligned box pairs ``(K, 6|7)`` -> three ``(K,)``."""
    if enclosing not in ENCLOSING_MODES:
        raise ValueError(f'box3d_giou: enclosing must be one of {ENCLOSING_MODES}, got {enclosing!r}')
    z_lo = torch.maximum(boxes1[:, 2] - boxes1[:, 5] / 2, boxes2[:, 2] - boxes2[:, 5] / 2)
    z_hi = torch.minimum(boxes1[:, 2] + boxes1[:, 5] / 2, boxes2[:, 2] + boxes2[:, 5] / 2)
    z_inter = (z_hi - z_lo).clamp(min=0)
    z_encl = (torch.maximum(boxes1[:, 2] + boxes1[:, 5] / 2, boxes2[:, 2] + boxes2[:, 5] / 2)
              - torch.minimum(boxes1[:, 2] - boxes1[:, 5] / 2, boxes2[:, 2] - boxes2[:, 5] / 2))
    vol1 = boxes1[:, 3:6].prod(dim=1)
    vol2 = boxes2[:, 3:6].prod(dim=1)
    if not rotated:
        lo1, hi1 = boxes1[:, :2] - boxes1[:, 3:5] / 2, boxes1[:, :2] + boxes1[:, 3:5] / 2
        lo2, hi2 = boxes2[:, :2] - boxes2[:, 3:5] / 2, boxes2[:, :2] + boxes2[:, 3:5] / 2
        bev_inter = (torch.minimum(hi1, hi2) - torch.maximum(lo1, lo2)).clamp(min=0).prod(dim=1)
        if enclosing == 'hull':
            corners = torch.cat([box3d_bev_corners(boxes1[:, :6]), box3d_bev_corners(boxes2[:, :6])], dim=1)
            bev_encl = _convex_hull_area(corners, eps=1e-5)
        else:
            bev_encl = (torch.maximum(hi1, hi2) - torch.minimum(lo1, lo2)).prod(dim=1)
    else:
        if boxes1.shape[-1] != 7 or boxes2.shape[-1] != 7:
            raise ValueError('box3d_giou: rotated=True needs boxes with 7 values (x, y, z, dx, dy, dz, yaw)')
        corners1, corners2 = box3d_bev_corners(boxes1), box3d_bev_corners(boxes2)
        # Float32 round-off of cross products grows with the squared box size: scale the slack with it.
        with torch.no_grad():
            size = torch.cat([boxes1[:, 3:5], boxes2[:, 3:5]], 1).abs().amax(1)
            area_tol = 1e-5 * size.square().clamp(min=1e-6)
        in1 = _inside_convex(corners1, corners2, area_tol)
        in2 = _inside_convex(corners2, corners1, area_tol)
        cross_pts, cross_valid = _edge_crossings(corners1, corners2, area_tol)
        candidates = torch.cat([corners1, corners2, cross_pts], dim=1)
        valid = torch.cat([in1, in2, cross_valid], dim=1)
        bev_inter = _convex_area_from_points(candidates, valid)
        all_corners = torch.cat([corners1, corners2], dim=1)
        if enclosing == 'hull':
            bev_encl = _convex_hull_area(all_corners, eps=1e-5)
        else:
            bev_encl = (all_corners.amax(dim=1) - all_corners.amin(dim=1)).prod(dim=1)
    inter = bev_inter * z_inter
    union = vol1 + vol2 - inter
    enclose = bev_encl * z_encl
    return inter, union, enclose


def _pairs(boxes1: Tensor, boxes2: Tensor, aligned: bool) -> Tuple[Tensor, Tensor, Optional[Tuple[int, int]]]:
    _check_boxes(boxes1, 'boxes1')
    _check_boxes(boxes2, 'boxes2')
    if aligned:
        if boxes1.shape[0] != boxes2.shape[0]:
            raise ValueError(f'box3d_giou: aligned=True needs as many boxes1 as boxes2, '
                             f'got {boxes1.shape[0]} and {boxes2.shape[0]}')
        return boxes1, boxes2, None
    n, m = boxes1.shape[0], boxes2.shape[0]
    b1 = boxes1[:, None].expand(n, m, boxes1.shape[-1]).reshape(n * m, -1)
    b2 = boxes2[None].expand(n, m, boxes2.shape[-1]).reshape(n * m, -1)
    return b1, b2, (n, m)


def _resolve_rotated(boxes1: Tensor, boxes2: Tensor, rotated: Optional[bool]) -> bool:
    if rotated is None:
        return boxes1.shape[-1] == 7 and boxes2.shape[-1] == 7
    return rotated


def iou_3d(boxes1: Tensor, boxes2: Tensor, aligned: bool = False, rotated: Optional[bool] = None,
           eps: float = 1e-6) -> Tensor:
    """3D IoU: pairwise ``(N, M)`` or, with ``aligned=True``, element-wise ``(N,)``.

    ``rotated=None`` uses the exact rotated path when both inputs carry a yaw column; pass ``rotated=False``
    to ignore the yaw (axis-aligned datasets such as ScanNet, where it is all zeros) and use the closed form.
    """
    b1, b2, shape = _pairs(boxes1, boxes2, aligned)
    inter, union, _ = box3d_overlap_terms(b1, b2, _resolve_rotated(boxes1, boxes2, rotated))
    iou = inter / union.clamp(min=eps)
    return iou if shape is None else iou.view(*shape)


def giou_3d(boxes1: Tensor, boxes2: Tensor, aligned: bool = False, rotated: Optional[bool] = None,
            enclosing: str = 'aligned', eps: float = 1e-6) -> Tensor:
    """Generalised 3D IoU in ``[-1, 1]``: ``IoU - (V_enclose - V_union) / V_enclose``.

    Pairwise ``(N, M)`` or, with ``aligned=True``, element-wise ``(N,)``; see :func:`iou_3d` for ``rotated``
    and the module docstring for ``enclosing``.
    """
    b1, b2, shape = _pairs(boxes1, boxes2, aligned)
    inter, union, enclose = box3d_overlap_terms(b1, b2, _resolve_rotated(boxes1, boxes2, rotated), enclosing)
    union = union.clamp(min=eps)
    enclose = enclose.clamp(min=eps)
    giou = inter / union - (enclose - union) / enclose
    return giou if shape is None else giou.view(*shape)
