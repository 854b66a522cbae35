"""Neighbour queries in pure PyTorch, matching mmcv's CUDA kernels.

All distances are squared Euclidean distances computed coordinate-wise in the
inputs' dtype (float32 for half inputs; see
:func:`~._utils.squared_distances`), in chunks of centres so that the
(centres x points) blocks stay small and cache resident.
"""
import numbers
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import cpu_kernels
from ._utils import (
    check_batch,
    check_batch_counts,
    check_same_device,
    check_tensor,
    compute_dtype,
    coordinate_planes,
    k_smallest_by_index,
    row_chunks,
    squared_distances,
)

# Distance sentinels of the CUDA kernels: knn keeps a heap initialised with
# 1e10 (farther points are never selected, their slots keep index 0);
# three_nn starts from 1e40 in double precision (stored back as inf in
# float32 when fewer than three points exist).
_KNN_INITIAL_DISTANCE = 1e10
_THREE_NN_INITIAL_DISTANCE = 1e40


def _distance_dtype(points: Tensor) -> torch.dtype:
    # Half inputs are compared in float32: the float32 squared radii are not
    # representable in half precision.
    return compute_dtype(points)


def _float32_square(radius: float) -> float:
    # The kernels square the radius in float32 before comparing.
    return float(np.float32(radius) * np.float32(radius))


def _first_in_ball(in_ball: Tensor,
                   sample_num: int) -> Tuple[Tensor, Tensor]:
    """The first ``sample_num`` indices (in point order) with ``in_ball``.

    Args:
        in_ball (Tensor): (R, N) bool.
        sample_num (int): slots per row.

    Returns:
        tuple[Tensor]: (R, sample_num) int64 indices whose free slots repeat
        the first found index (0 for empty rows), and the (R,) number of
        points found per row.
    """
    rows = in_ball.shape[0]
    # ``nonzero`` lists the hits row-major with ascending point index, so the
    # rank of a hit within its row is its slot.
    row, col = in_ball.nonzero(as_tuple=True)
    count = torch.bincount(row, minlength=rows)
    row_start = torch.cumsum(count, 0) - count
    rank = torch.arange(row.numel(), device=row.device) - row_start[row]
    keep = rank < sample_num
    output = torch.zeros(
        rows, sample_num, dtype=torch.long, device=in_ball.device)
    output[row[keep], rank[keep]] = col[keep]
    slots = torch.arange(sample_num, device=in_ball.device)
    output = torch.where(slots < count[:, None], output, output[:, :1])
    return output, count


def _radius_mask(dist2: Tensor, min_radius2: float,
                 max_radius2: float) -> Tensor:
    """``d2 == 0 or min_r2 <= d2 < max_r2`` like the batched kernel.

    The squared radii are float32 values, exactly representable in the
    float32/float64 distances, so comparing in the distance dtype is exact.
    """
    if min_radius2 == 0 and max_radius2 > 0:
        # d2 >= 0, so the zero-distance clause is implied.
        return dist2 < max_radius2
    return (dist2 == 0) | ((dist2 >= min_radius2) & (dist2 < max_radius2))


def ball_query_torch(min_radius: float,
                     max_radius: float,
                     sample_num: int,
                     xyz: Tensor,
                     center_xyz: Tensor,
                     xyz_batch_cnt: Optional[Tensor] = None,
                     center_xyz_batch_cnt: Optional[Tensor] = None) -> Tensor:
    """Same as ``mmcv.ops.ball_query``.

    Batched mode: a point ``k`` is in the ball of a centre when its squared
    distance ``d2`` satisfies ``d2 == 0 or min_r^2 <= d2 < max_r^2``; the
    first ``sample_num`` such points in index order are returned, free slots
    repeat the first one and a centre without points gets all zeros.

    Stacked mode (both ``*_batch_cnt`` given, int32): ``d2 < max_r^2`` only
    (``min_radius`` is ignored there, as in mmcv), indices local to each batch
    element, and an empty ball is ``[-1, 0, 0, ...]``.

    Args:
        min_radius (float): inner radius (batched mode only).
        max_radius (float): outer radius.
        sample_num (int): neighbours per centre.
        xyz (Tensor): (B, N, 3) points, or stacked (N1 + N2 + ..., 3).
        center_xyz (Tensor): (B, npoint, 3) centres, or stacked
            (M1 + M2 + ..., 3).
        xyz_batch_cnt (Tensor, optional): int32 (B,) [N1, N2, ...].
        center_xyz_batch_cnt (Tensor, optional): int32 (B,) [M1, M2, ...].

    Returns:
        Tensor: int32 (B, npoint, sample_num) or stacked
        (M1 + M2 + ..., sample_num). Not differentiable.
    """
    sample_num, stacked, min_radius2, max_radius2 = _check_ball_query_inputs(
        min_radius, max_radius, sample_num, xyz, center_xyz, xyz_batch_cnt,
        center_xyz_batch_cnt)
    op = 'ball_query'
    with torch.no_grad():
        if stacked:
            return _stacked_ball_query(max_radius2, sample_num, xyz,
                                       center_xyz, xyz_batch_cnt,
                                       center_xyz_batch_cnt)
        batch = check_batch(op, ('xyz', 'center_xyz'), (xyz, center_xyz))
        num_centres, num_points = center_xyz.shape[1], xyz.shape[1]
        output = torch.zeros(
            batch,
            num_centres,
            sample_num,
            dtype=torch.int32,
            device=xyz.device)
        if num_points == 0 or num_centres == 0:
            return output
        centre_planes = coordinate_planes(center_xyz.to(_distance_dtype(xyz)))
        point_planes = coordinate_planes(xyz.to(_distance_dtype(xyz)))
        for rows in row_chunks(num_centres, batch * num_points):
            dist2 = squared_distances(centre_planes, point_planes, rows)
            in_ball = _radius_mask(dist2, min_radius2, max_radius2)
            found, _ = _first_in_ball(in_ball.flatten(0, 1), sample_num)
            output[:, rows] = found.view(batch, -1, sample_num).int()
        return output


def _check_ball_query_inputs(
        min_radius: float, max_radius: float, sample_num: int, xyz: Tensor,
        center_xyz: Tensor, xyz_batch_cnt: Optional[Tensor],
        center_xyz_batch_cnt: Optional[Tensor]
) -> Tuple[int, bool, float, float]:
    """Raise on bad ball query arguments; return ``(sample_num, stacked,
    min_radius2, max_radius2)`` with the radii squared in float32."""
    op = 'ball_query'
    if not min_radius < max_radius:
        raise ValueError(f'{op}: `min_radius` must be smaller than '
                         f'`max_radius`, got {min_radius} and {max_radius}')
    if isinstance(sample_num, bool) or \
            not isinstance(sample_num, numbers.Integral) or sample_num <= 0:
        raise ValueError(f'{op}: `sample_num` must be a positive int, got '
                         f'{sample_num!r}')
    sample_num = int(sample_num)
    stacked = xyz_batch_cnt is not None and center_xyz_batch_cnt is not None
    ndim = 2 if stacked else 3
    check_tensor(op, 'xyz', xyz, ndim, last_dim=3, floating=True)
    check_tensor(op, 'center_xyz', center_xyz, ndim, last_dim=3, floating=True)
    check_same_device(op, xyz=xyz, center_xyz=center_xyz)
    if xyz.dtype != center_xyz.dtype:
        raise TypeError(
            f'{op}: `xyz` and `center_xyz` must share a dtype, got '
            f'{xyz.dtype} and {center_xyz.dtype}')
    return (sample_num, stacked, _float32_square(min_radius),
            _float32_square(max_radius))


def _check_stacked_counts(xyz: Tensor, center_xyz: Tensor,
                          xyz_batch_cnt: Tensor, center_xyz_batch_cnt: Tensor
                          ) -> Tuple[List[int], List[int]]:
    """Raise on bad stacked-mode counts; return them as lists."""
    op = 'ball_query'
    check_batch_counts(op, 'xyz_batch_cnt', xyz_batch_cnt,
                       'center_xyz_batch_cnt', center_xyz_batch_cnt)
    point_counts = xyz_batch_cnt.tolist()
    centre_counts = center_xyz_batch_cnt.tolist()
    if sum(point_counts) != xyz.shape[0] or \
            sum(centre_counts) != center_xyz.shape[0]:
        raise ValueError(f'{op}: batch counts sum to {sum(point_counts)} '
                         f'points / {sum(centre_counts)} centres but the '
                         f'inputs hold {xyz.shape[0]} / {center_xyz.shape[0]}')
    return point_counts, centre_counts


def _stacked_ball_query(max_radius2: float, sample_num: int, xyz: Tensor,
                        center_xyz: Tensor, xyz_batch_cnt: Tensor,
                        center_xyz_batch_cnt: Tensor) -> Tensor:
    point_counts, centre_counts = _check_stacked_counts(
        xyz, center_xyz, xyz_batch_cnt, center_xyz_batch_cnt)
    output = torch.zeros(
        center_xyz.shape[0], sample_num, dtype=torch.int32, device=xyz.device)
    dtype = _distance_dtype(xyz)
    point_start = centre_start = 0
    # One iteration per batch element (scenes differ in size).
    for num_points, num_centres in zip(point_counts, centre_counts):
        points = xyz[point_start:point_start + num_points]
        centres = center_xyz[centre_start:centre_start + num_centres]
        out = output[centre_start:centre_start + num_centres]
        point_start += num_points
        centre_start += num_centres
        if num_centres == 0:
            continue
        if num_points == 0:
            out[:, 0] = -1
            continue
        centre_planes = coordinate_planes(centres[None].to(dtype))
        point_planes = coordinate_planes(points[None].to(dtype))
        for rows in row_chunks(num_centres, num_points):
            dist2 = squared_distances(centre_planes, point_planes, rows)[0]
            found, count = _first_in_ball(dist2 < max_radius2, sample_num)
            found[count == 0, 0] = -1
            out[rows] = found.int()
    return output


def knn_torch(k: int,
              xyz: Tensor,
              center_xyz: Optional[Tensor] = None,
              transposed: bool = False) -> Tensor:
    """Same as ``mmcv.ops.knn``.

    Args:
        k (int): neighbours per centre, ``0 < k < 100`` as in mmcv.
        xyz (Tensor): (B, N, 3), or (B, 3, N) if ``transposed``.
        center_xyz (Tensor, optional): (B, npoint, 3), or (B, 3, npoint) if
            ``transposed``; defaults to ``xyz``.
        transposed (bool): layout of the inputs.

    Returns:
        Tensor: int32 (B, k, npoint), nearest first, ties by lower index (the
        CUDA heap orders exact ties arbitrarily). When fewer than ``k`` points
        are closer than ``sqrt(1e10)`` the remaining slots are 0, as in mmcv.
        Not differentiable.
    """
    k, xyz, center_xyz, batch = _check_knn_inputs(k, xyz, center_xyz,
                                                  transposed)
    num_centres, num_points = center_xyz.shape[1], xyz.shape[1]
    output = torch.zeros(
        batch, num_centres, k, dtype=torch.int32, device=xyz.device)
    with torch.no_grad():
        if num_points > 0 and num_centres > 0:
            dtype = _distance_dtype(xyz)
            centre_planes = coordinate_planes(center_xyz.to(dtype))
            point_planes = coordinate_planes(xyz.to(dtype))
            take = min(k, num_points)
            for rows in row_chunks(num_centres, batch * num_points):
                dist2 = squared_distances(centre_planes, point_planes,
                                          rows).flatten(0, 1)
                _, index, found = k_smallest_by_index(dist2, take,
                                                      _KNN_INITIAL_DISTANCE)
                index = torch.where(found, index, torch.zeros_like(index))
                output[:, rows, :take] = index.view(batch, -1, take).int()
    return output.transpose(1, 2).contiguous()


def _check_knn_inputs(k: int, xyz: Tensor, center_xyz: Optional[Tensor],
                      transposed: bool) -> Tuple[int, Tensor, Tensor, int]:
    """Raise on bad knn arguments; return ``(k, xyz, center_xyz, batch)``
    with both point sets as (B, *, 3) views."""
    op = 'knn'
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) \
            or not 0 < k < 100:
        raise ValueError(f'{op}: `k` must be an int in [1, 99] (the CUDA '
                         f'kernel keeps at most 99 neighbours), got {k!r}')
    k = int(k)
    if center_xyz is None:
        center_xyz = xyz
    check_tensor(op, 'xyz', xyz, 3, floating=True)
    check_tensor(op, 'center_xyz', center_xyz, 3, floating=True)
    coord_dim = 1 if transposed else 2
    if xyz.shape[coord_dim] != 3 or center_xyz.shape[coord_dim] != 3:
        layout = '(B, 3, N)' if transposed else '(B, N, 3)'
        raise ValueError(f'{op}: with transposed={transposed} the inputs must '
                         f'be {layout}, got {tuple(xyz.shape)} and '
                         f'{tuple(center_xyz.shape)}')
    if transposed:
        xyz = xyz.transpose(1, 2)
        center_xyz = center_xyz.transpose(1, 2)
    check_same_device(op, xyz=xyz, center_xyz=center_xyz)
    batch = check_batch(op, ('xyz', 'center_xyz'), (xyz, center_xyz))
    return k, xyz, center_xyz, batch


def three_nn_torch(target: Tensor, source: Tensor) -> Tuple[Tensor, Tensor]:
    """Same as ``mmcv.ops.three_nn``.

    Args:
        target (Tensor): (B, N, 3) query points.
        source (Tensor): (B, M, 3) points searched.

    Returns:
        tuple[Tensor]: ``(dist, idx)`` of shape (B, N, 3): Euclidean (not
        squared) distances in ``target``'s dtype, nearest first, and int32
        indices; ties go to the lower index like the kernel's strict ``<``
        scan. With ``M < 3`` the missing slots hold index 0 and distance
        ``sqrt(1e40)`` cast to the dtype (inf in float32). Not differentiable.
    """
    batch = _check_three_nn_inputs(target, source)
    num_query, num_source = target.shape[1], source.shape[1]
    sentinel = _three_nn_sentinel(target.dtype)
    dist2_out = torch.full((batch, num_query, 3),
                           float(sentinel),
                           dtype=target.dtype,
                           device=target.device)
    index_out = torch.zeros(
        batch, num_query, 3, dtype=torch.int32, device=target.device)
    with torch.no_grad():
        if num_source > 0 and num_query > 0:
            dtype = _distance_dtype(target)
            target_planes = coordinate_planes(target.to(dtype))
            source_planes = coordinate_planes(source.to(dtype))
            take = min(3, num_source)
            for rows in row_chunks(num_query, batch * num_source):
                dist2 = squared_distances(target_planes, source_planes,
                                          rows).flatten(0, 1)
                # In float32 the limit 1e40 is inf: every finite distance.
                values, index, found = k_smallest_by_index(
                    dist2, take, _THREE_NN_INITIAL_DISTANCE)
                values = torch.where(found, values,
                                     torch.full_like(values, float(sentinel)))
                index = torch.where(found, index, torch.zeros_like(index))
                dist2_out[:, rows, :take] = values.view(batch, -1, take)
                index_out[:, rows, :take] = index.view(batch, -1, take).int()
        return torch.sqrt(dist2_out), index_out


def _check_three_nn_inputs(target: Tensor, source: Tensor) -> int:
    """Raise on bad three_nn inputs; return the batch size."""
    op = 'three_nn'
    check_tensor(op, 'target', target, 3, last_dim=3, floating=True)
    check_tensor(op, 'source', source, 3, last_dim=3, floating=True)
    check_same_device(op, target=target, source=source)
    return check_batch(op, ('target', 'source'), (target, source))


def _three_nn_sentinel(dtype: torch.dtype) -> Tensor:
    # The kernel's double 1e40 stored in the output dtype (inf in float32).
    return torch.tensor(_THREE_NN_INITIAL_DISTANCE,
                        dtype=torch.float64).to(dtype)


# ------------------------------------------------- routed implementations
# What the dispatchers run where mmcv's kernels do not: the exact kd-tree
# kernels of :mod:`.cpu_kernels` for CPU tensors when numba is available,
# the PyTorch implementations above otherwise. Same results either way.
def knn_fallback(k: int,
                 xyz: Tensor,
                 center_xyz: Optional[Tensor] = None,
                 transposed: bool = False) -> Tensor:
    """:func:`knn_torch`'s contract, on a kd-tree for CPU tensors."""
    if not cpu_kernels.accepts(xyz, center_xyz):
        return knn_torch(k, xyz, center_xyz, transposed)
    k, xyz, center_xyz, batch = _check_knn_inputs(k, xyz, center_xyz,
                                                  transposed)
    if xyz.shape[1] == 0 or center_xyz.shape[1] == 0:
        return torch.zeros(batch, k, center_xyz.shape[1], dtype=torch.int32)
    with torch.no_grad():
        return cpu_kernels.knn(k, xyz, center_xyz, _KNN_INITIAL_DISTANCE)


def ball_query_fallback(min_radius: float,
                        max_radius: float,
                        sample_num: int,
                        xyz: Tensor,
                        center_xyz: Tensor,
                        xyz_batch_cnt: Optional[Tensor] = None,
                        center_xyz_batch_cnt: Optional[Tensor] = None
                        ) -> Tensor:
    """:func:`ball_query_torch`'s contract (batched and stacked), on a
    kd-tree for CPU tensors."""
    if not cpu_kernels.accepts(xyz, center_xyz):
        return ball_query_torch(min_radius, max_radius, sample_num, xyz,
                                center_xyz, xyz_batch_cnt,
                                center_xyz_batch_cnt)
    sample_num, stacked, min_radius2, max_radius2 = _check_ball_query_inputs(
        min_radius, max_radius, sample_num, xyz, center_xyz, xyz_batch_cnt,
        center_xyz_batch_cnt)
    with torch.no_grad():
        if stacked:
            point_counts, centre_counts = _check_stacked_counts(
                xyz, center_xyz, xyz_batch_cnt, center_xyz_batch_cnt)
            return cpu_kernels.stacked_ball_query(max_radius2, sample_num,
                                                  xyz, center_xyz,
                                                  point_counts, centre_counts)
        check_batch('ball_query', ('xyz', 'center_xyz'), (xyz, center_xyz))
        return cpu_kernels.ball_query(min_radius2, max_radius2, sample_num,
                                      xyz, center_xyz)


def three_nn_fallback(target: Tensor, source: Tensor) -> Tuple[Tensor, Tensor]:
    """:func:`three_nn_torch`'s contract, on a kd-tree for CPU tensors."""
    if not cpu_kernels.accepts(target, source):
        return three_nn_torch(target, source)
    _check_three_nn_inputs(target, source)
    with torch.no_grad():
        return cpu_kernels.three_nn(target, source,
                                    _THREE_NN_INITIAL_DISTANCE,
                                    float(_three_nn_sentinel(target.dtype)))
