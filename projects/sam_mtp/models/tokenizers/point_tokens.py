"""The token batch shared by every tokenizer, and the vectorised grouping helpers they are built from."""
from dataclasses import dataclass, fields
from typing import List, Optional

import torch
from torch import Tensor

# Range of the random sort keys inside a group (31 bits, so group * range + noise fits in int64).
_KEY_RANGE = 1 << 31


@dataclass
class PointTokens:
    """A padded batch of point tokens (B samples, M token slots, S points per token, N input points).

    Attributes:
        neighborhoods: (B, M, S, 3) float, each token's points relative to its centre; zeros at padding.
        centers: (B, M, 3) float, token centres in the input frame; zeros at padding.
        padding_mask: (B, M) bool, True where the slot is padding (no token).
        region_index: (B, M) long, 1-based id of the region that gives the token its 2D target,
            0 for a token without a target (fallback token, or a kNN centre outside every region),
            -1 at padding.
        point_token: (B, N) long, the token each input point belongs to, -1 for padding points and for
            points that no token owns (dropped).
    """
    neighborhoods: Tensor
    centers: Tensor
    padding_mask: Tensor
    region_index: Tensor
    point_token: Tensor

    @property
    def num_tokens(self) -> Tensor:
        """(B,) number of real (non-padded) tokens of every sample."""
        return (~self.padding_mask).sum(dim=1)

    @property
    def target_mask(self) -> Tensor:
        """(B, M) bool, True for tokens that carry a region (distillation) target."""
        return self.region_index > 0

    def to(self, device) -> 'PointTokens':
        """Move every tensor to ``device``."""
        return PointTokens(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def sample_group_members(group: Tensor, num_groups: int, num_samples: int,
                         generator: Optional[torch.Generator] = None) -> Tensor:
    """Pick ``num_samples`` member points of every group, vectorised over points and groups.

    Rule: the points of each group are put in a uniformly random order (one sort of all points by the key
    ``group * 2**31 + random 31-bit integer``); slot ``j`` of a group with ``c`` points takes the point of
    rank ``j % c``. So a group with ``c >= num_samples`` points gets a uniformly random subset without
    replacement, and a smaller group repeats its points cyclically, every one of its points appearing at
    least once (``floor`` or ``ceil`` of ``num_samples / c`` times).

    Args:
        group: (n,) long group id of every point in [0, num_groups), or -1 for points in no group.
        num_groups: number of groups G; each must own at least one point.
        num_samples: points per group S.
        generator: CPU generator making the order reproducible (evaluation); None uses the global RNG on
            the points' device (training).

    Returns:
        (G, S) long indices into ``group``.
    """
    device = group.device
    member_idx = torch.where(group >= 0)[0]
    member_group = group[member_idx]
    counts = torch.bincount(member_group, minlength=num_groups)
    if counts.numel() != num_groups or bool((counts == 0).any()):
        raise ValueError(f'every one of the {num_groups} groups needs at least one point, got counts '
                         f'{counts.tolist()}')
    n = member_idx.numel()
    if generator is None:
        noise = torch.randint(0, _KEY_RANGE, (n, ), device=device)
    else:
        noise = torch.randint(0, _KEY_RANGE, (n, ), generator=generator).to(device)
    # Group-major, random inside a group; equal noise (probability 2**-31 per pair) only fixes an order.
    sorted_points = member_idx[torch.argsort(member_group * _KEY_RANGE + noise)]
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(num_samples, device=device)
    rank = slot[None, :] % counts[:, None]
    return sorted_points[starts[:, None] + rank]


def group_centroids(points: Tensor, group: Tensor, num_groups: int) -> Tensor:
    """(G, 3) mean of the points of every group; ``group`` is -1 for points in no group."""
    # Points in no group go to an extra bin that is dropped, which avoids masking the point arrays.
    bins = torch.where(group >= 0, group, torch.full_like(group, num_groups))
    counts = torch.bincount(bins, minlength=num_groups + 1)[:num_groups].clamp(min=1)
    sums = torch.stack([torch.bincount(bins, weights=points[:, i], minlength=num_groups + 1)[:num_groups]
                        for i in range(points.shape[1])], dim=1)
    return sums.to(points.dtype) / counts[:, None].to(points.dtype)


def pad_token_batch(per_sample: List[dict], num_points: int, num_samples: int,
                    reference: Tensor) -> PointTokens:
    """Stack per-sample token tensors into a padded :class:`PointTokens`.

    Every dict holds ``neighborhoods`` (G, S, 3), ``centers`` (G, 3), ``region_index`` (G,) and
    ``point_token`` (n_input,) for one sample. Slots are padded to the largest G (at least 1).
    """
    batch = len(per_sample)
    max_tokens = max([1] + [s['centers'].shape[0] for s in per_sample])
    device, dtype = reference.device, reference.dtype
    neighborhoods = torch.zeros(batch, max_tokens, num_samples, 3, device=device, dtype=dtype)
    centers = torch.zeros(batch, max_tokens, 3, device=device, dtype=dtype)
    padding_mask = torch.ones(batch, max_tokens, device=device, dtype=torch.bool)
    region_index = torch.full((batch, max_tokens), -1, device=device, dtype=torch.long)
    point_token = torch.full((batch, num_points), -1, device=device, dtype=torch.long)
    for b, sample in enumerate(per_sample):
        g = sample['centers'].shape[0]
        neighborhoods[b, :g] = sample['neighborhoods']
        centers[b, :g] = sample['centers']
        padding_mask[b, :g] = False
        region_index[b, :g] = sample['region_index']
        point_token[b] = sample['point_token']
    return PointTokens(neighborhoods, centers, padding_mask, region_index, point_token)


def check_point_inputs(points: Tensor, point_region: Optional[Tensor], owner: str) -> None:
    """Raise a ValueError naming ``owner`` when the padded point batch is malformed."""
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f'{owner}: points must have shape (B, N, 3), got {tuple(points.shape)}')
    if not points.is_floating_point():
        raise ValueError(f'{owner}: points must be floating point, got {points.dtype}')
    if point_region is None:
        return
    if point_region.shape != points.shape[:2]:
        raise ValueError(f'{owner}: point_region must have shape (B, N) = {tuple(points.shape[:2])}, '
                         f'got {tuple(point_region.shape)}')
    if point_region.is_floating_point() or point_region.dtype == torch.bool:
        raise ValueError(f'{owner}: point_region must be an integer tensor, got {point_region.dtype}')
    if point_region.numel() and int(point_region.min()) < -1:
        raise ValueError(f'{owner}: point_region values must be >= -1 (-1 = padding, 0 = no region), '
                         f'found {int(point_region.min())}')
