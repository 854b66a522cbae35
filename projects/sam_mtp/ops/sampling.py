"""Furthest point sampling in pure PyTorch, matching mmcv's CUDA kernels.

mmcv's kernel (one CUDA block per batch element) starts at point 0 and then
repeatedly picks the point whose distance to the already chosen set is the
largest. Distances start at ``1e10`` and are the running minimum of the
squared Euclidean distance (or, for the ``with_dist`` variant, of the given
pairwise matrix entry).

Ties are resolved by the kernel's parallel reduction, not by the lowest index:
thread ``t`` of a block of ``T = 2 ** floor(log2(N))`` threads (at most 1024)
scans points ``t, t + T, ...`` keeping the first maximum, then a tree
reduction keeps the left operand on equal values, which prefers the thread
whose bit-reversed id is smallest. :func:`cuda_fps_scan_order` returns the
points in that order of preference; running ``argmax`` (first maximum wins)
over it reproduces the kernel's choice exactly, including the repeats of
index 0 once more samples than points are requested.
"""
import functools
import math
import numbers

import numpy as np
import torch
from torch import Tensor

from . import cpu_kernels
from ._utils import check_tensor, compute_dtype

# mmcv initialises the running minimum distance with this value, so larger
# distances are clipped to it.
_FPS_INITIAL_DISTANCE = 1e10
_FPS_MAX_THREADS = 1024


def cuda_fps_block_size(num_points: int) -> int:
    """Threads per block mmcv launches for FPS over ``num_points`` points.

    The same double precision ``log(n) / log(2)`` truncation as the launcher,
    so that the rare rounding at exact powers of two agrees as well.
    """
    pow_2 = int(math.log(float(num_points)) / math.log(2.0))
    return max(min(1 << pow_2, _FPS_MAX_THREADS), 1)


@functools.lru_cache(maxsize=64)
def _cuda_fps_scan_order_cpu(num_points: int) -> Tensor:
    block = cuda_fps_block_size(num_points)
    bits = block.bit_length() - 1
    index = torch.arange(num_points)
    thread = index % block
    reversed_thread = torch.zeros_like(thread)
    for bit in range(bits):
        reversed_thread |= ((thread >> bit) & 1) << (bits - 1 - bit)
    return torch.argsort(reversed_thread * num_points + index)


def cuda_fps_scan_order(num_points: int, device: torch.device) -> Tensor:
    """Permutation of ``range(num_points)`` sorted by the CUDA kernel's tie
    preference (most preferred first); entry 0 is always point 0."""
    return _cuda_fps_scan_order_cpu(num_points).to(device)


def _check_num_points(op: str, num_points: object, available: int) -> int:
    if isinstance(num_points, bool) or \
            not isinstance(num_points, numbers.Integral):
        raise TypeError(f'{op}: `num_points` must be an int, got '
                        f'{type(num_points).__name__}')
    num_points = int(num_points)
    if num_points < 0:
        raise ValueError(f'{op}: `num_points` must be >= 0, got {num_points}')
    if num_points > 0 and available == 0:
        raise ValueError(f'{op}: cannot sample {num_points} points from an '
                         'empty point set')
    return num_points


def _check_fps_inputs(points_xyz: Tensor, num_points: object) -> int:
    op = 'furthest_point_sample'
    check_tensor(op, 'points_xyz', points_xyz, 3, last_dim=3, floating=True)
    return _check_num_points(op, num_points, points_xyz.shape[1])


@functools.lru_cache(maxsize=64)
def _cuda_fps_scan_rank(num_points: int) -> np.ndarray:
    """Position of every point in :func:`cuda_fps_scan_order` (lower is
    preferred on ties), as the CPU kernel's int64 tie key."""
    rank = np.empty(num_points, dtype=np.int64)
    rank[_cuda_fps_scan_order_cpu(num_points).numpy()] = np.arange(num_points)
    rank.setflags(write=False)
    return rank


def furthest_point_sample_fallback(points_xyz: Tensor,
                                   num_points: int) -> Tensor:
    """What the dispatcher runs where mmcv's kernels do not: the exact
    kd-tree kernel of :mod:`.cpu_kernels` for CPU tensors (when numba is
    available), :func:`furthest_point_sample_torch` otherwise. Both give
    the same indices."""
    if not cpu_kernels.accepts(points_xyz):
        return furthest_point_sample_torch(points_xyz, num_points)
    num_points = _check_fps_inputs(points_xyz, num_points)
    with torch.no_grad():
        return cpu_kernels.furthest_point_sample(
            points_xyz, num_points, _cuda_fps_scan_rank(points_xyz.shape[1]),
            _FPS_INITIAL_DISTANCE)


def furthest_point_sample_torch(points_xyz: Tensor, num_points: int) -> Tensor:
    """D-FPS on any device, same result as ``mmcv.ops.furthest_point_sample``.

    Args:
        points_xyz (Tensor): (B, N, 3) coordinates.
        num_points (int): number of samples M. ``M > N`` is allowed: after all
            N points are taken every distance is 0 and, as on CUDA, index 0 is
            repeated.

    Returns:
        Tensor: (B, M) int32 indices, the first being 0. Not differentiable.
    """
    num_points = _check_fps_inputs(points_xyz, num_points)
    batch, num_in, _ = points_xyz.shape
    device = points_xyz.device
    output = torch.zeros(batch, num_points, dtype=torch.int32, device=device)
    if num_points == 0 or batch == 0:
        return output
    with torch.no_grad():
        order = cuda_fps_scan_order(num_in, device)
        # Coordinates in scan order, one contiguous row per axis.
        coords = points_xyz.to(compute_dtype(points_xyz))[:, order]
        coords = coords.permute(2, 0, 1).contiguous()  # (3, B, N)
        running = torch.full((batch, num_in),
                             _FPS_INITIAL_DISTANCE,
                             dtype=coords.dtype,
                             device=device)
        dist = torch.empty_like(running)
        diff = torch.empty_like(running)
        chosen = torch.zeros(
            batch, num_points, dtype=torch.long, device=device)
        last = torch.zeros(batch, 1, dtype=torch.long, device=device)
        for step in range(1, num_points):
            # dx * dx + dy * dy + dz * dz in the kernel's order, in place.
            torch.sub(coords[0], coords[0].gather(1, last), out=dist)
            dist.mul_(dist)
            for axis in (1, 2):
                torch.sub(coords[axis], coords[axis].gather(1, last), out=diff)
                # Separate multiply and add (no fused multiply-add) so that
                # rounding matches the plain float expression.
                diff.mul_(diff)
                dist.add_(diff)
            torch.minimum(running, dist, out=running)
            last = running.argmax(dim=1, keepdim=True)
            chosen[:, step] = last[:, 0]
        output.copy_(order[chosen])
    return output


def furthest_point_sample_with_dist_torch(points_dist: Tensor,
                                          num_points: int) -> Tensor:
    """FPS over a precomputed distance matrix (F-FPS), same result as
    ``mmcv.ops.furthest_point_sample_with_dist``.

    Args:
        points_dist (Tensor): (B, N, N) pairwise distances; row ``i`` is read
            when point ``i`` has just been chosen.
        num_points (int): number of samples M.

    Returns:
        Tensor: (B, M) int32 indices, the first being 0. Not differentiable.
    """
    op = 'furthest_point_sample_with_dist'
    check_tensor(op, 'points_dist', points_dist, 3, floating=True)
    batch, num_in, num_cols = points_dist.shape
    if num_cols != num_in:
        raise ValueError(f'{op}: `points_dist` must be square (B, N, N), got '
                         f'shape {tuple(points_dist.shape)}')
    num_points = _check_num_points(op, num_points, num_in)
    device = points_dist.device
    output = torch.zeros(batch, num_points, dtype=torch.int32, device=device)
    if num_points == 0 or batch == 0:
        return output
    with torch.no_grad():
        order = cuda_fps_scan_order(num_in, device)
        dists = points_dist.to(compute_dtype(points_dist))
        running = torch.full((batch, num_in),
                             _FPS_INITIAL_DISTANCE,
                             dtype=dists.dtype,
                             device=device)
        batch_index = torch.arange(batch, device=device)
        chosen = torch.zeros(
            batch, num_points, dtype=torch.long, device=device)
        last = torch.zeros(batch, dtype=torch.long, device=device)
        for step in range(1, num_points):
            # Row of the last chosen point, its columns in scan order.
            row = dists[batch_index, last][:, order]
            torch.minimum(running, row, out=running)
            last = order[running.argmax(dim=1)]
            chosen[:, step] = last
        output.copy_(chosen)
    return output
