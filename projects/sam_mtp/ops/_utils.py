"""Shared helpers of the pure-PyTorch point ops: input checks, chunking and
an index-tie-stable k-smallest selection."""
from typing import Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor

# Upper bound on the number of elements of one (rows x points) temporary.
# About 0.5M float32 values (2 MiB) keep the brute-force distance blocks in
# the CPU caches: measured 2x faster than 16 MiB blocks for 20k points, and
# the peak memory stays small for any scene size.
CHUNK_ELEMENTS = 1 << 19


def check_tensor(op: str,
                 name: str,
                 tensor: object,
                 ndim: int,
                 last_dim: Optional[int] = None,
                 floating: bool = False,
                 integer: bool = False) -> Tensor:
    """Raise a ``TypeError``/``ValueError`` naming ``op`` and ``name`` when
    ``tensor`` is not a tensor of the expected rank / last size / dtype."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f'{op}: `{name}` must be a torch.Tensor, '
                        f'got {type(tensor).__name__}')
    if tensor.dim() != ndim:
        raise ValueError(f'{op}: `{name}` must be a {ndim}-D tensor, got '
                         f'shape {tuple(tensor.shape)}')
    if last_dim is not None and tensor.shape[-1] != last_dim:
        raise ValueError(f'{op}: the last dimension of `{name}` must be '
                         f'{last_dim}, got shape {tuple(tensor.shape)}')
    if floating and not tensor.is_floating_point():
        raise TypeError(f'{op}: `{name}` must be a floating point tensor, '
                        f'got {tensor.dtype}')
    if integer and (tensor.is_floating_point() or tensor.is_complex()
                    or tensor.dtype == torch.bool):
        raise TypeError(f'{op}: `{name}` must be an integer tensor, '
                        f'got {tensor.dtype}')
    return tensor


def check_same_device(op: str, **tensors: Tensor) -> None:
    """Raise a ``ValueError`` when the given tensors live on different
    devices."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ', '.join(f'`{k}` on {v}' for k, v in devices.items())
        raise ValueError(f'{op}: all inputs must be on the same device, got '
                         f'{listing}')


def check_batch(op: str, names: Sequence[str],
                tensors: Sequence[Tensor]) -> int:
    """Raise a ``ValueError`` when the leading (batch) sizes differ."""
    sizes = [t.shape[0] for t in tensors]
    if len(set(sizes)) > 1:
        listing = ', '.join(f'`{n}`: {s}' for n, s in zip(names, sizes))
        raise ValueError(f'{op}: inputs must share the batch size, got '
                         f'{listing}')
    return sizes[0]


def check_batch_counts(op: str, first: str, first_count: object,
                       second: str, second_count: object,
                       integer: bool = False) -> None:
    """Raise unless the stacked layout's two per-sample count tensors are 1-D
    int32 (as mmcv requires) and of one length (one entry per sample)."""
    for name, count in ((first, first_count), (second, second_count)):
        check_tensor(op, name, count, 1, integer=integer)
        if count.dtype != torch.int32:
            raise TypeError(f'{op}: `{name}` must be int32 (as mmcv '
                            f'requires), got {count.dtype}')
    if first_count.numel() != second_count.numel():
        raise ValueError(f'{op}: `{first}` and `{second}` '
                         'must have the same length, got '
                         f'{first_count.numel()} and '
                         f'{second_count.numel()}')


def check_index_range(op: str, name: str, index: Tensor, upper: int) -> None:
    """Raise a ``ValueError`` when an index lies outside ``[0, upper)``.

    The CUDA kernels read out-of-bounds memory silently in this case; on the
    CPU a clear error is the more useful behaviour.
    """
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= upper:
        raise ValueError(f'{op}: `{name}` must lie in [0, {upper}), got '
                         f'values in [{low}, {high}]')


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """Float16/bfloat16 inputs are computed in float32 (the mmcv wrappers
    cast half inputs to float32 before sampling as well)."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    return tensor.dtype


def row_chunks(num_rows: int, row_length: int) -> Iterator[slice]:
    """Yield slices over ``num_rows`` so that one chunk holds about
    ``CHUNK_ELEMENTS`` elements of ``row_length`` each."""
    step = max(1, CHUNK_ELEMENTS // max(1, row_length))
    for start in range(0, num_rows, step):
        yield slice(start, min(num_rows, start + step))


def coordinate_planes(points: Tensor) -> Tensor:
    """(B, N, 3) -> contiguous (3, B, N): one plane per axis, so that the
    broadcast differences below read contiguous memory."""
    return points.permute(2, 0, 1).contiguous()


def squared_distances(centre_planes: Tensor, point_planes: Tensor,
                      rows: slice) -> Tensor:
    """Squared Euclidean distances of some centres to every point.

    Args:
        centre_planes (Tensor): (3, B, M) from :func:`coordinate_planes`.
        point_planes (Tensor): (3, B, N).
        rows (slice): the centres to use.

    Returns:
        Tensor: (B, len(rows), N) computed coordinate-wise as
        ``(dx * dx + dy * dy) + dz * dz`` in the inputs' dtype, the same
        operations in the same order as the CUDA kernels. The matrix-product
        expansion ``|a|^2 + |b|^2 - 2ab`` would be faster but cancels
        catastrophically for close points and would flip radius and tie
        decisions.
    """
    dist2 = centre_planes[0][:, rows, None] - point_planes[0][:, None, :]
    dist2.mul_(dist2)
    diff = torch.empty_like(dist2)
    for axis in (1, 2):
        torch.sub(
            centre_planes[axis][:, rows, None],
            point_planes[axis][:, None, :],
            out=diff)
        diff.mul_(diff)
        dist2.add_(diff)
    return dist2


def k_smallest_by_index(values: Tensor, k: int,
                        limit: float) -> Tuple[Tensor, Tensor, Tensor]:
    """The ``k`` smallest entries of each row, ascending, ties by index.

    Args:
        values (Tensor): (R, N) floating keys.
        k (int): number of entries to select, ``k <= N``.
        limit (float): entries ``>= limit`` (and NaN) are never selected;
            the CUDA kernels' initial "best distance" sentinels.

    Returns:
        tuple[Tensor]: ``(selected_values, indices, found)`` of shape (R, k);
        ``indices`` is int64 and ``found`` tells which slots hold a selected
        entry (rows with fewer than ``k`` entries below ``limit`` put those
        first).
    """
    num = values.shape[1]
    # One extra candidate reveals ties at the k-th place.
    take = min(k + 1, num)
    top_values, top_index = values.topk(
        take, dim=1, largest=False, sorted=True)
    if take > k:
        # ``topk`` makes no promise about which of several equal values at
        # the k-th place it returns. Such rows are redone with a stable sort
        # so that the lower index wins, as in the kernels' strict-``<`` scans.
        boundary = top_values[:, k - 1]
        tied = (top_values[:, k] == boundary) & (boundary < limit)
        top_values, top_index = top_values[:, :k], top_index[:, :k]
        if bool(tied.any()):
            rows = tied.nonzero()[:, 0]
            order = values[rows].argsort(dim=1, stable=True)[:, :k]
            top_index[rows] = order
            top_values[rows] = values[rows].gather(1, order)
    # Order the selection by (value, index): sort by index, then stably by
    # value.
    top_index, by_index = top_index.sort(dim=1)
    top_values = top_values.gather(1, by_index)
    top_values, by_value = top_values.sort(dim=1, stable=True)
    top_index = top_index.gather(1, by_value)
    return top_values, top_index, top_values < limit
