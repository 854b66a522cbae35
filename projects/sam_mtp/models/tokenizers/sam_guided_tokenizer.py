"""SAM-guided tokenization (SAM-MTP §3.2): one token per SAM region, centred on the region's mean."""
import math
from typing import Optional

import torch
from mmdet3d.registry import MODELS
from torch import Tensor, nn

from projects.sam_mtp.ops import furthest_point_sample
from .point_tokens import (PointTokens, check_point_inputs, group_centroids, pad_token_batch,
                           sample_group_members)


@MODELS.register_module()
class SAMGuidedTokenizer(nn.Module):
    """Group points into one token per SAM region, plus fallback tokens for points outside every region.

    Rules (the open choices of the paper, see docs/pretraining.md):

    * Region tokens: every region id > 0 with at least ``min_points`` points becomes one token. Its centre is
      the mean of **all** the region's points (paper); its ``num_points_per_token`` (S) points are drawn by
      :func:`sample_group_members`: a random subset without replacement when the region has >= S points,
      a cyclic repeat of a random order otherwise. In eval mode the order comes from a generator seeded
      with ``eval_seed``, so the same frame always gives the same tokens.
    * Token cap: at most ``max_tokens`` tokens per sample. Region tokens have priority (they carry the
      targets); when more than ``max_tokens`` regions qualify, the smallest are dropped (ties: the higher
      region id is dropped). Region tokens are ordered by ascending region id.
    * Fallback tokens: points with region 0, in regions below ``min_points`` or in capped regions are
      "unassigned". When there are at least ``min_points`` of them, ``ceil(n_unassigned / fallback_size)``
      centres (at most ``max_fallback_tokens`` and the remaining token budget) are chosen by furthest point
      sampling and every unassigned point joins its nearest centre (1-NN), so the cells partition the
      unassigned points. Each cell becomes a token exactly like a region (mean centre, same sampling rule)
      with ``region_index`` 0: it joins the transformer but has no distillation target. Unassigned points
      that get no fallback token are dropped (``point_token`` -1). ``max_fallback_tokens=0`` drops them all.

    Every kept point belongs to exactly one token (``point_token``); the S points of a token are a sample
    of its members. Vectorised over points and regions; only the batch is looped.

    Args:
        num_points_per_token (int): S, points kept per token. Default 128.
        min_points (int): smallest region that becomes a token. Default 16.
        max_tokens (int): M_max, the most tokens per sample (regions + fallback). Default 128.
        max_fallback_tokens (int): the most fallback tokens per sample. Default 32.
        fallback_size (int, optional): unassigned points per fallback token; None uses S.
        eval_seed (int): seed of the deterministic sampling in eval mode. Default 0.
    """

    def __init__(self,
                 num_points_per_token: int = 128,
                 min_points: int = 16,
                 max_tokens: int = 128,
                 max_fallback_tokens: int = 32,
                 fallback_size: Optional[int] = None,
                 eval_seed: int = 0):
        super().__init__()
        if num_points_per_token < 1 or min_points < 1 or max_tokens < 1:
            raise ValueError(f'{type(self).__name__}: num_points_per_token, min_points and max_tokens must '
                             f'be >= 1, got {num_points_per_token}, {min_points}, {max_tokens}')
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

    def _select_regions(self, region: Tensor, valid: Tensor, num_ids: int) -> Tensor:
        """Ids (ascending) of the regions that become tokens."""
        counts = torch.bincount(region[valid], minlength=num_ids)
        counts[0] = 0  # id 0 is "no region", never a region token
        region_ids = (counts >= self.min_points).nonzero(as_tuple=True)[0]
        if region_ids.numel() > self.max_tokens:
            # Stable descending sort of the counts: equal sizes keep ascending id order, so the higher id
            # is dropped first and the choice is deterministic.
            order = torch.sort(counts[region_ids], descending=True, stable=True).indices
            region_ids = torch.sort(region_ids[order[:self.max_tokens]]).values
        return region_ids

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

    def _tokenize_sample(self, points: Tensor, region: Tensor) -> dict:
        valid = region >= 0
        num_ids = max(int(region.max()) + 1, 1) if region.numel() else 1
        region_ids = self._select_regions(region, valid, num_ids)
        num_regions = region_ids.numel()
        lookup = torch.full((num_ids, ), -1, dtype=torch.long, device=region.device)
        lookup[region_ids] = torch.arange(num_regions, device=region.device)
        group = torch.where(valid, lookup[region.clamp(min=0)], torch.full_like(region, -1))
        region_index = region_ids
        budget = min(self.max_fallback_tokens, self.max_tokens - num_regions)
        if budget > 0:
            cell = self._fallback_cells(points, valid & (group < 0), budget)
            if cell is not None:
                num_cells = int(cell.max()) + 1
                group = torch.where(cell >= 0, cell + num_regions, group)
                region_index = torch.cat([region_ids, region_ids.new_zeros(num_cells)])
        num_groups = region_index.numel()
        generator = None
        if not self.training:
            generator = torch.Generator().manual_seed(self.eval_seed)
        if num_groups:
            members = sample_group_members(group, num_groups, self.num_points_per_token, generator)
            centers = group_centroids(points, group, num_groups)
            neighborhoods = points[members] - centers[:, None]
        else:
            centers = points.new_zeros(0, 3)
            neighborhoods = points.new_zeros(0, self.num_points_per_token, 3)
        return dict(neighborhoods=neighborhoods, centers=centers, region_index=region_index,
                    point_token=group)
