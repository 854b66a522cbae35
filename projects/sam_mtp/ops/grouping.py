"""Index-based feature gathering in pure PyTorch (differentiable w.r.t. the
features, like mmcv's CUDA kernels).

mmcv's kernels read out-of-range indices from arbitrary memory; here an index
outside ``[0, N)`` raises a ``ValueError`` instead, except in the stacked
grouping mode where ``-1`` marks an empty ball (see
:func:`grouping_operation_torch`).
"""
from typing import Optional

import torch
from torch import Tensor

from ._utils import check_batch, check_batch_counts, check_index_range, check_same_device, check_tensor


def gather_points_torch(features: Tensor, indices: Tensor) -> Tensor:
    """Same as ``mmcv.ops.gather_points``.

    Args:
        features (Tensor): (B, C, N) features.
        indices (Tensor): (B, M) integer indices into N.

    Returns:
        Tensor: (B, C, M), ``out[b, c, m] = features[b, c, indices[b, m]]``.
    """
    op = 'gather_points'
    check_tensor(op, 'features', features, 3)
    check_tensor(op, 'indices', indices, 2, integer=True)
    check_same_device(op, features=features, indices=indices)
    batch = check_batch(op, ('features', 'indices'), (features, indices))
    channels, num_in = features.shape[1:]
    check_index_range(op, 'indices', indices, num_in)
    index = indices.long()[:, None, :].expand(batch, channels, -1)
    return features.gather(2, index)


def grouping_operation_torch(
        features: Tensor,
        indices: Tensor,
        features_batch_cnt: Optional[Tensor] = None,
        indices_batch_cnt: Optional[Tensor] = None) -> Tensor:
    """Same as ``mmcv.ops.grouping_operation``.

    Args:
        features (Tensor): (B, C, N), or stacked (N1 + N2 + ..., C).
        indices (Tensor): (B, npoint, nsample), or stacked
            (M1 + M2 + ..., nsample) with indices local to each batch element.
        features_batch_cnt (Tensor, optional): int32 (B,) [N1, N2, ...].
        indices_batch_cnt (Tensor, optional): int32 (B,) [M1, M2, ...].

    Returns:
        Tensor: (B, C, npoint, nsample), or stacked (M1 + M2 + ..., C,
        nsample). In the stacked mode a local index outside ``[0, N_b)`` (the
        ``-1`` that the stacked ball query writes for an empty ball) yields
        zeros; mmcv's kernel reads a neighbouring element's memory there.
    """
    op = 'grouping_operation'
    if features_batch_cnt is not None and indices_batch_cnt is not None:
        return _stacked_grouping(features, indices, features_batch_cnt,
                                 indices_batch_cnt)
    check_tensor(op, 'features', features, 3)
    check_tensor(op, 'indices', indices, 3, integer=True)
    check_same_device(op, features=features, indices=indices)
    batch = check_batch(op, ('features', 'indices'), (features, indices))
    channels, num_in = features.shape[1:]
    num_groups, group_size = indices.shape[1:]
    check_index_range(op, 'indices', indices, num_in)
    index = indices.long().reshape(batch, 1, num_groups * group_size)
    grouped = features.gather(2, index.expand(batch, channels, -1))
    return grouped.view(batch, channels, num_groups, group_size)


def _stacked_grouping(features: Tensor, indices: Tensor,
                      features_batch_cnt: Tensor,
                      indices_batch_cnt: Tensor) -> Tensor:
    op = 'grouping_operation'
    check_tensor(op, 'features', features, 2)
    check_tensor(op, 'indices', indices, 2, integer=True)
    check_batch_counts(op, 'features_batch_cnt', features_batch_cnt,
                       'indices_batch_cnt', indices_batch_cnt, integer=True)
    check_same_device(
        op,
        features=features,
        indices=indices,
        features_batch_cnt=features_batch_cnt,
        indices_batch_cnt=indices_batch_cnt)
    feature_counts = features_batch_cnt.long()
    index_counts = indices_batch_cnt.long()
    if int(feature_counts.sum()) != features.shape[0]:
        raise ValueError(f'{op}: `features_batch_cnt` sums to '
                         f'{int(feature_counts.sum())} but `features` has '
                         f'{features.shape[0]} rows')
    if int(index_counts.sum()) != indices.shape[0]:
        raise ValueError(f'{op}: `indices_batch_cnt` sums to '
                         f'{int(index_counts.sum())} but `indices` has '
                         f'{indices.shape[0]} rows')
    starts = torch.cumsum(feature_counts, 0) - feature_counts
    row_batch = torch.repeat_interleave(
        torch.arange(index_counts.numel(), device=indices.device),
        index_counts)
    local = indices.long()
    valid = (local >= 0) & (local < feature_counts[row_batch][:, None])
    flat = torch.where(valid, local + starts[row_batch][:, None],
                       torch.zeros_like(local))
    num_rows, group_size = indices.shape
    if features.shape[0] == 0:  # nothing to gather: every slot is empty
        return features.new_zeros(num_rows, features.shape[1], group_size)
    grouped = features[flat.reshape(-1)].view(num_rows, group_size, -1)
    grouped = grouped * valid[..., None].to(grouped.dtype)
    return grouped.permute(0, 2, 1).contiguous()


def three_interpolate_torch(features: Tensor, indices: Tensor,
                            weight: Tensor) -> Tensor:
    """Same as ``mmcv.ops.three_interpolate``.

    Args:
        features (Tensor): (B, C, M) source features.
        indices (Tensor): (B, N, 3) indices into M.
        weight (Tensor): (B, N, 3) interpolation weights.

    Returns:
        Tensor: (B, C, N),
        ``out[b, c, n] = sum_j w[b, n, j] * features[b, c, idx[b, n, j]]``.
        As in mmcv, gradients flow to ``features`` only; ``weight`` is treated
        as a constant.
    """
    op = 'three_interpolate'
    check_tensor(op, 'features', features, 3)
    check_tensor(op, 'indices', indices, 3, last_dim=3, integer=True)
    check_tensor(op, 'weight', weight, 3, last_dim=3)
    check_same_device(op, features=features, indices=indices, weight=weight)
    batch = check_batch(op, ('features', 'indices', 'weight'),
                        (features, indices, weight))
    if weight.shape != indices.shape:
        raise ValueError(f'{op}: `weight` and `indices` must have the same '
                         f'shape, got {tuple(weight.shape)} and '
                         f'{tuple(indices.shape)}')
    channels, num_in = features.shape[1:]
    num_out = indices.shape[1]
    check_index_range(op, 'indices', indices, num_in)
    index = indices.long().reshape(batch, 1, num_out * 3)
    neighbours = features.gather(2, index.expand(batch, channels, -1))
    neighbours = neighbours.view(batch, channels, num_out, 3)
    weight = weight.detach().to(features.dtype)[:, None]  # (B, 1, N, 3)
    # w0 * f0 + w1 * f1 + w2 * f2, summed left to right like the kernel.
    products = neighbours * weight
    return products[..., 0] + products[..., 1] + products[..., 2]
