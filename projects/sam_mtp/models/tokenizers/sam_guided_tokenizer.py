"""SAM-guided tokenization (SAM-MTP §3.2): one token per SAM region, centred on the region's mean."""
import logging
import math
from collections import Counter
from typing import Optional

import torch
from mmdet3d.registry import MODELS
from mmengine.logging import print_log
from torch import Tensor, nn

from projects.sam_mtp.ops import furthest_point_sample

from .point_tokens import PointTokens, check_point_inputs, group_centroids, pad_token_batch, sample_group_members


@MODELS.register_module()
class SAMGuidedTokenizer(nn.Module):
    """Group points into one token per SAM region, plus fallback tokens for points outside every region.

    Rules (the open choices of the paper, see docs/pretraining.md, "Token budget"):

    * Region tokens: every region id > 0 with at least ``min_points`` points becomes one token. Its centre is
      the mean of **all** the token's points (paper); its ``num_points_per_token`` (S) points are drawn by
      :func:`sample_group_members`: a random subset without replacement when the token has >= S points,
      a cyclic repeat of a random order otherwise. Region tokens are ordered by ascending region id.
    * Token budget: ``max_tokens=None`` (default) sets no cap, so every region gets its token (padding and the
      key-padding mask make the varying count cheap). With a cap, region tokens have priority; when more than
      ``max_tokens`` regions qualify, the largest ``max_tokens`` keep their own token (equal sizes: the lower id)
      and every other region is **merged** into the kept region whose centroid is nearest to its centroid:
      its points join that token (which keeps its region's target) instead of leaving the model. So no point of
      a region with >= ``min_points`` points is ever dropped.
    * Fallback tokens: points with region 0 or in regions below ``min_points`` are "unassigned". When there are
      at least ``min_points`` of them, ``ceil(n_unassigned / fallback_size)`` centres (at most
      ``max_fallback_tokens`` and the budget left by the region tokens) are chosen by furthest point sampling
      and every unassigned point joins its nearest centre (1-NN), so the cells partition the unassigned points.
      Each cell becomes a token exactly like a region (mean centre, same sampling rule) with ``region_index``
      0: it joins the transformer but has no distillation target. When the region tokens use up the whole cap,
      the unassigned points join their nearest token instead. ``max_fallback_tokens=0`` drops them (the
      "no fallback" ablation); so do fewer than ``min_points`` unassigned points (``point_token`` -1).
    * Every merge is counted (``budget_stats``) and logged, at the first capped sample and then at 10, 100,
      1000, ... capped samples.

    Every kept point belongs to exactly one token (``point_token``); the S points of a token are a sample
    of its members. Vectorised over points and regions; only the batch is looped. Randomness enters only
    through the member sampling, drawn from :meth:`sampling_generator` (None in training: the global RNG).

    Args:
        num_points_per_token (int): S, points kept per token. Default 128.
        min_points (int): smallest region that becomes a token. Default 16.
        max_tokens (int, optional): M_max, the most tokens per sample (regions + fallback); None: no cap.
            Default None.
        max_fallback_tokens (int): the most fallback tokens per sample. Default 32.
        fallback_size (int, optional): unassigned points per fallback token; None uses S.
        eval_seed (int): seed of the deterministic sampling in eval mode. Default 0.
    """

    def __init__(self,
                 num_points_per_token: int = 128,
                 min_points: int = 16,
                 max_tokens: Optional[int] = None,
                 max_fallback_tokens: int = 32,
                 fallback_size: Optional[int] = None,
                 eval_seed: int = 0):
        super().__init__()
        if num_points_per_token < 1 or min_points < 1 or (max_tokens is not None and max_tokens < 1):
            raise ValueError(f'{type(self).__name__}: num_points_per_token, min_points and max_tokens must '
                             f'be >= 1 (max_tokens may be None), got {num_points_per_token}, {min_points}, '
                             f'{max_tokens}')
        if max_fallback_tokens < 0:
            raise ValueError(f'{type(self).__name__}: max_fallback_tokens must be >= 0, '
                             f'got {max_fallback_tokens}')
        self.num_points_per_token = num_points_per_token
        self.min_points = min_points
        self.max_tokens = max_tokens
        self.max_fallback_tokens = max_fallback_tokens
        self.fallback_size = fallback_size or num_points_per_token
        if self.fallback_size < 1:
            raise ValueError(f'{type(self).__name__}: fallback_size must be >= 1, got {fallback_size}')
        self.eval_seed = eval_seed
        # Plain counters (not buffers: checkpoints and state dicts stay unchanged).
        self.budget_stats = Counter()

    def extra_repr(self) -> str:
        return (f'num_points_per_token={self.num_points_per_token}, min_points={self.min_points}, '
                f'max_tokens={self.max_tokens}, max_fallback_tokens={self.max_fallback_tokens}')

    def forward(self, points: Tensor, point_region: Tensor) -> PointTokens:
        """Tokenize a padded batch.

        Args:
            points: (B, N, 3) float xyz.
            point_region: (B, N) integer, 1-based region id of every point, 0 = no region, -1 = padding.
        """
        check_point_inputs(points, point_region, type(self).__name__)
        if point_region is None:
            raise ValueError(f'{type(self).__name__}: point_region is required')
        point_region = point_region.long()
        samples = [self._tokenize_sample(points[b], point_region[b]) for b in range(points.shape[0])]
        return pad_token_batch(samples, points.shape[1], self.num_points_per_token, points)

    def sampling_generator(self) -> Optional[torch.Generator]:
        """The generator of the member sampling: seeded with ``eval_seed`` in eval mode (the same frame always
        gives the same tokens), None in training (the global RNG)."""
        if self.training:
            return None
        return torch.Generator().manual_seed(self.eval_seed)

    def _region_groups(self, points: Tensor, region: Tensor, valid: Tensor, num_ids: int):
        """Token of every point from the regions (-1: unassigned), the region id of every region token, and
        (number of merged regions, their points)."""
        counts = torch.bincount(region[valid], minlength=num_ids)
        counts[0] = 0  # id 0 is "no region", never a region token
        region_ids = (counts >= self.min_points).nonzero(as_tuple=True)[0]  # ascending
        num_regions = region_ids.numel()
        lookup = torch.full((num_ids, ), -1, dtype=torch.long, device=region.device)
        lookup[region_ids] = torch.arange(num_regions, device=region.device)
        group = torch.where(valid, lookup[region.clamp(min=0)], torch.full_like(region, -1))
        if self.max_tokens is None or num_regions <= self.max_tokens:
            return group, region_ids, (0, 0)
        # Stable descending sort of the sizes: equal sizes keep ascending id order, so the higher id is merged.
        order = torch.sort(counts[region_ids], descending=True, stable=True).indices
        kept = torch.sort(order[:self.max_tokens]).values   # positions in region_ids, ascending id order
        merged = order[self.max_tokens:]
        centroids = group_centroids(points, group, num_regions)
        nearest = torch.cdist(centroids[merged], centroids[kept]).argmin(dim=1)
        token_of = torch.empty(num_regions, dtype=torch.long, device=region.device)
        token_of[kept] = torch.arange(kept.numel(), device=region.device)
        token_of[merged] = nearest
        merged_points = int(counts[region_ids[merged]].sum())
        group = torch.where(group >= 0, token_of[group.clamp(min=0)], group)
        return group, region_ids[kept], (merged.numel(), merged_points)

    def _fallback_cells(self, points: Tensor, unassigned: Tensor, budget: int) -> Optional[Tensor]:
        """Cell id in [0, n_cells) of every unassigned point, -1 elsewhere; None if no fallback token."""
        num_unassigned = int(unassigned.sum())
        if num_unassigned < self.min_points:
            return None
        num_cells = min(math.ceil(num_unassigned / self.fallback_size), self.max_fallback_tokens, budget)
        if num_cells < 1:
            return None
        idx = unassigned.nonzero(as_tuple=True)[0]
        pts = points[idx].unsqueeze(0).contiguous()
        centre_idx = furthest_point_sample(pts, num_cells)[0].long()
        # 1-NN of every unassigned point among at most max_fallback_tokens centres: a small exact distance
        # matrix is cheaper than a kNN kernel call here.
        nearest = torch.cdist(pts[0], pts[0, centre_idx]).argmin(dim=1)
        # Duplicate points can leave a centre with no member; renumber the non-empty cells densely.
        used = torch.bincount(nearest, minlength=num_cells) > 0
        dense = torch.cumsum(used.long(), 0) - 1
        cell = torch.full_like(unassigned, -1, dtype=torch.long)
        cell[idx] = dense[nearest]
        return cell

    def _record_merges(self, merged_regions: int, merged_region_points: int, merged_unassigned: int) -> None:
        stats = self.budget_stats
        stats['samples'] += 1
        if not (merged_regions or merged_unassigned):
            return
        stats['capped_samples'] += 1
        stats['merged_regions'] += merged_regions
        stats['merged_region_points'] += merged_region_points
        stats['merged_unassigned_points'] += merged_unassigned
        capped = stats['capped_samples']
        if str(capped).rstrip('0') == '1':  # 1, 10, 100, ...
            print_log(f'{type(self).__name__}: the token cap max_tokens={self.max_tokens} was reached in {capped} '
                      f'of {stats["samples"]} samples so far; {stats["merged_regions"]} regions '
                      f'({stats["merged_region_points"]} points) were merged into their nearest kept region and '
                      f'{stats["merged_unassigned_points"]} unassigned points into their nearest token instead of '
                      'being dropped (raise max_tokens, or set it to None, to give every region its own token)',
                      logger='current', level=logging.WARNING)

    def _tokenize_sample(self, points: Tensor, region: Tensor) -> dict:
        valid = region >= 0
        num_ids = max(int(region.max()) + 1, 1) if region.numel() else 1
        group, region_index, (merged_regions, merged_points) = self._region_groups(points, region, valid, num_ids)
        num_regions = region_index.numel()
        budget = self.max_fallback_tokens
        if self.max_tokens is not None:
            budget = min(budget, self.max_tokens - num_regions)
        unassigned = valid & (group < 0)
        merged_unassigned = 0
        if budget > 0:
            cell = self._fallback_cells(points, unassigned, budget)
            if cell is not None:
                num_cells = int(cell.max()) + 1
                group = torch.where(cell >= 0, cell + num_regions, group)
                region_index = torch.cat([region_index, region_index.new_zeros(num_cells)])
        elif self.max_fallback_tokens > 0 and num_regions and int(unassigned.sum()) >= self.min_points:
            # The regions used the whole cap: the unassigned points join their nearest token, not the void.
            idx = unassigned.nonzero(as_tuple=True)[0]
            centroids = group_centroids(points, group, num_regions)
            group[idx] = torch.cdist(points[idx], centroids).argmin(dim=1)
            merged_unassigned = idx.numel()
        self._record_merges(merged_regions, merged_points, merged_unassigned)
        num_groups = region_index.numel()
        if num_groups:
            members = sample_group_members(group, num_groups, self.num_points_per_token, self.sampling_generator())
            centers = group_centroids(points, group, num_groups)
            neighborhoods = points[members] - centers[:, None]
        else:
            centers = points.new_zeros(0, 3)
            neighborhoods = points.new_zeros(0, self.num_points_per_token, 3)
        return dict(neighborhoods=neighborhoods, centers=centers, region_index=region_index,
                    point_token=group)
