"""Point-MAE / Bridge3D tokenization: furthest point sampling centres with k-nearest-neighbour groups."""
from typing import Optional

import torch
from mmdet3d.registry import MODELS
from torch import Tensor, nn

from projects.sam_mtp.ops import furthest_point_sample, knn

from .point_tokens import PointTokens, check_point_inputs, pad_token_batch

# mmcv's CUDA kNN kernel (and the ops.knn that mirrors it) keeps at most 99 neighbours.
_MAX_OPS_KNN = 99
# Distances computed per chunk of centres, in elements (256 MiB of float32).
_TOPK_CHUNK_ELEMENTS = 1 << 26


def knn_indices(points: Tensor, centers: Tensor, k: int) -> Tensor:
    """(b, G, k) long indices of the ``k`` nearest ``points`` (b, n, 3) of every centre (b, G, 3).

    Uses ``ops.knn`` up to its limit of 99 neighbours; larger groups (Bridge3D's 128) use an exact
    top-k over squared distances, chunked over centres to bound memory, on any device.
    """
    if k <= _MAX_OPS_KNN:
        return knn(k, points, centers).long().transpose(1, 2)
    batch, num_points = points.shape[:2]
    chunk = max(1, _TOPK_CHUNK_ELEMENTS // max(batch * num_points, 1))
    out = []
    for part in centers.split(chunk, dim=1):
        out.append(torch.cdist(part, points).topk(k, dim=-1, largest=False).indices)
    return torch.cat(out, dim=1)


@MODELS.register_module()
class FPSKNNTokenizer(nn.Module):
    """``num_tokens`` FPS centres, each with its ``num_points_per_token`` nearest neighbours.

    The output has the structure of :class:`SAMGuidedTokenizer`'s, so "without SAM-guided tokenization" is a
    one-line config switch:

    * ``centers`` is the FPS point itself and ``neighborhoods`` are the kNN points minus it (Point-MAE).
    * ``region_index`` is the region id of the centre point, as Bridge3D pairs tokens with masks through
      the centre pixel; a centre outside every region (id 0) gives a token with no target.
    * kNN groups overlap and need not cover every point, so ``point_token`` is the nearest centre of each
      point (a partition), not group membership.

    A sample with fewer valid points than ``num_tokens`` gets one token per point; one with fewer than
    ``num_points_per_token`` repeats its neighbours cyclically.

    Args:
        num_tokens (int): FPS centres per sample. Default 256.
        num_points_per_token (int): kNN group size. Default 128.
    """

    def __init__(self, num_tokens: int = 256, num_points_per_token: int = 128):
        super().__init__()
        if num_tokens < 1 or num_points_per_token < 1:
            raise ValueError(f'{type(self).__name__}: num_tokens and num_points_per_token must be >= 1, '
                             f'got {num_tokens}, {num_points_per_token}')
        self.num_tokens = num_tokens
        self.num_points_per_token = num_points_per_token

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}, num_points_per_token={self.num_points_per_token}'

    def forward(self, points: Tensor, point_region: Optional[Tensor] = None) -> PointTokens:
        """Tokenize a padded batch; ``point_region`` (B, N) is optional (-1 marks padding points)."""
        check_point_inputs(points, point_region, type(self).__name__)
        if point_region is None:
            point_region = points.new_zeros(points.shape[:2], dtype=torch.long)
        point_region = point_region.long()
        valid = point_region >= 0
        if bool(valid.all()):
            # No padding: one batched call of each op (one kernel launch each on CUDA).
            samples = self._group(points, point_region)
        else:
            samples = []
            for b in range(points.shape[0]):
                idx = valid[b].nonzero(as_tuple=True)[0]
                sample = self._group(points[b, idx][None], point_region[b, idx][None])[0]
                point_token = torch.full_like(point_region[b], -1)
                point_token[idx] = sample['point_token']
                sample['point_token'] = point_token
                samples.append(sample)
        return pad_token_batch(samples, points.shape[1], self.num_points_per_token, points)

    def _group(self, points: Tensor, point_region: Tensor) -> list:
        """Tokens of a batch (b, n, 3) of unpadded point sets, as a list of per-sample dicts."""
        batch, num_points = points.shape[:2]
        if num_points == 0:
            return [
                dict(neighborhoods=points.new_zeros(0, self.num_points_per_token, 3),
                     centers=points.new_zeros(0, 3), region_index=point_region.new_zeros(0),
                     point_token=point_region.new_zeros(0))
            ]
        points = points.contiguous()
        num_tokens = min(self.num_tokens, num_points)
        k = min(self.num_points_per_token, num_points)
        centre_idx = furthest_point_sample(points, num_tokens).long()  # (b, G)
        batch_idx = torch.arange(batch, device=points.device)[:, None]
        centers = points[batch_idx, centre_idx]  # (b, G, 3)
        neighbour_idx = knn_indices(points, centers.contiguous(), k)  # (b, G, k)
        if k < self.num_points_per_token:
            slot = torch.arange(self.num_points_per_token, device=points.device) % k
            neighbour_idx = neighbour_idx[..., slot]
        neighborhoods = points[batch_idx[..., None], neighbour_idx] - centers[:, :, None]
        region_index = point_region[batch_idx, centre_idx]
        point_token = knn(1, centers.contiguous(), points)[:, 0].long()  # (b, n)
        return [
            dict(neighborhoods=neighborhoods[i], centers=centers[i], region_index=region_index[i],
                 point_token=point_token[i]) for i in range(batch)
        ]
