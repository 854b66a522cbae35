"""Shared pieces of the pretraining algorithms: input checks, region targets, random token masking, pooling."""
from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor

from ..tokenizers.point_tokens import PointTokens

# Keys the collate function (datasets/collate.py) puts in ``data_samples``.
REGION_TARGET_KEYS = ('region_feat', 'region_weight', 'region_mask', 'num_groups')


def unpack_point_inputs(inputs: Mapping, owner: str) -> Tuple[Tensor, Optional[Tensor]]:
    """``inputs['points']`` (B, N, 3) and ``inputs.get('point_region')`` (B, N), with a clear error."""
    if not isinstance(inputs, Mapping) or 'points' not in inputs:
        got = sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__
        raise ValueError(f'{owner}: inputs must be a dict with "points" (B, N, 3) and "point_region" (B, N) '
                         f'as made by the sam_mtp_collate collate function, got {got}')
    return inputs['points'], inputs.get('point_region')


def gather_region_targets(tokens: PointTokens, data_samples: Mapping,
                          owner: str) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
    """Batch and slot index of every token with a region target, and that region's target, weight, K.

    Returns ``(batch_idx (T,), slot_idx (T,), dict(target (T, D), group_weight (T,), num_groups (T,)))``.
    """
    if not isinstance(data_samples, Mapping) or any(k not in data_samples for k in REGION_TARGET_KEYS):
        got = sorted(data_samples) if isinstance(data_samples, Mapping) else type(data_samples).__name__
        raise ValueError(f'{owner}: data_samples must be a dict with {list(REGION_TARGET_KEYS)} (made by '
                         f'sam_mtp_collate), got {got}')
    region_feat = data_samples['region_feat']
    region_mask = data_samples['region_mask']
    batch_idx, slot_idx = tokens.target_mask.nonzero(as_tuple=True)
    row = tokens.region_index[batch_idx, slot_idx] - 1
    if region_feat.shape[0] != tokens.region_index.shape[0]:
        raise ValueError(f'{owner}: region targets have batch size {region_feat.shape[0]}, the points '
                         f'{tokens.region_index.shape[0]}')
    if row.numel():
        out_of_range = row >= region_feat.shape[1]
        if not bool(out_of_range.any()):
            out_of_range = ~region_mask[batch_idx, row]
        if bool(out_of_range.any()):
            bad = int(batch_idx[out_of_range][0])
            raise ValueError(f'{owner}: sample {bad} has points with region ids that have no target row '
                             f'(point_region and region_feat disagree)')
    targets = dict(
        target=region_feat[batch_idx, row],
        group_weight=data_samples['region_weight'][batch_idx, row],
        num_groups=data_samples['num_groups'][batch_idx])
    return batch_idx, slot_idx, targets


def random_token_mask(padding_mask: Tensor, mask_ratio: float,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """(B, M) bool, True for tokens hidden from the student; padding is never masked.

    Per sample with M_real real tokens, N_m = round(mask_ratio * M_real) tokens (round half to even, as
    Python's ``round``) are chosen uniformly at random, clamped to [1, M_real - 1] when M_real >= 2 so the
    student sees at least one token and predicts at least one; samples with M_real < 2 mask nothing.
    """
    if not 0. <= mask_ratio < 1.:
        raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
    real = ~padding_mask
    num_real = real.sum(dim=1)
    num_masked = torch.round(num_real.double() * mask_ratio).long()
    num_masked = torch.where(num_real >= 2, torch.minimum(num_masked.clamp(min=1), num_real - 1),
                             torch.zeros_like(num_masked))
    if generator is None:
        noise = torch.rand(padding_mask.shape, device=padding_mask.device)
    else:
        noise = torch.rand(padding_mask.shape, generator=generator).to(padding_mask.device)
    noise = noise.masked_fill(padding_mask, 2.)  # padding ranks last
    rank = noise.argsort(dim=1).argsort(dim=1)
    return (rank < num_masked[:, None]) & real


def masked_mean(features: Tensor, keep: Tensor) -> Tensor:
    """(B, M, C) averaged over the tokens where ``keep`` (B, M) is True -> (B, C); zero for none."""
    weight = keep.to(features.dtype)[..., None]
    return (features * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1.)
