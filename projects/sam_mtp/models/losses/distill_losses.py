"""Token-level regression losses of SAM-MTP: the group-balanced distillation loss (stage 1) and the feature
MSE of masked token prediction (stage 2)."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from torch import Tensor, nn


def _check_pair(owner: str, pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 2:
        raise ValueError(f'{owner}: pred and target must both be (T, D), got {tuple(pred.shape)} and '
                         f'{tuple(target.shape)}')


WEIGHT_SCALES = ('batch_mean', 'num_groups')


@MODELS.register_module()
class GroupBalancedDistillLoss(nn.Module):
    """L = (1/T) sum_i s_i * w_i * SmoothL1_beta(pred_i, target_i), SmoothL1 averaged over channels.

    T is the number of tokens with a target (the caller passes only those: padded and fallback tokens are
    left out); w_i is the paper's group weight of token i's region (§3.4,
    ``labels.formats.frame_labels.group_weights``).

    The paper's weights sum to 1 over the K groups and are small for the frequent groups that hold most
    regions, so the printed loss is far smaller than the unweighted smooth-L1 and its size depends on K and on
    the group sizes. ``weight_scale`` chooses the factor s:

    * ``'batch_mean'`` (default): s = 1 / mean_i(w_i) over the batch's tokens (a constant, not
      differentiated: the weights are data). The loss is then the w-weighted mean of the per-token losses,
      ``sum_i w_i l_i / sum_i w_i``: it equals the unweighted loss whenever all tokens have the same loss, and
      always lies between the smallest and largest per-token loss, so it keeps the magnitude of the unweighted
      loss (for summing with other losses, clipping, or comparing runs), while the relative weights of the
      regions are the paper's.
    * ``'num_groups'``: s = K, so the mean weight *over groups* is 1. Over regions it is not: frequent groups
      hold most regions and get the smallest weights, so the region-averaged w*K is below 1 (measured: 0.156
      for group sizes [1000, 100, 10]; about 0.70 for a Zipf distribution over 32 groups) and the loss is
      correspondingly smaller than the unweighted one.
    * ``None``: s = 1, the paper's formula as printed; a float is a fixed factor.

    ``use_group_weights=False`` sets every w_i = 1 (the "without re-weighting" ablation, Table 3) and ignores
    ``weight_scale``.

    Args:
        beta (float): smooth-L1 transition point. Default 1.0 (Bridge3D's ``nn.SmoothL1Loss()``).
        use_group_weights (bool): Default True.
        weight_scale (str | float | None): 'batch_mean', 'num_groups', None or a float. Default 'batch_mean'.
        loss_weight (float): Default 1.0.
    """

    def __init__(self, beta: float = 1.0, use_group_weights: bool = True,
                 weight_scale: Union[str, float, None] = 'batch_mean', loss_weight: float = 1.0):
        super().__init__()
        if beta < 0:
            raise ValueError(f'{type(self).__name__}: beta must be >= 0, got {beta}')
        if isinstance(weight_scale, str) and weight_scale not in WEIGHT_SCALES:
            raise ValueError(f"{type(self).__name__}: weight_scale must be one of {WEIGHT_SCALES}, None or a "
                             f'number, got {weight_scale!r}')
        self.beta = beta
        self.use_group_weights = use_group_weights
        self.weight_scale = weight_scale
        self.loss_weight = loss_weight

    def extra_repr(self) -> str:
        return (f'beta={self.beta}, use_group_weights={self.use_group_weights}, '
                f'weight_scale={self.weight_scale!r}, loss_weight={self.loss_weight}')

    def forward(self, pred: Tensor, target: Tensor, group_weight: Optional[Tensor] = None,
                num_groups: Union[Tensor, int, None] = None) -> Tensor:
        """
        Args:
            pred: (T, D) projected token features.
            target: (T, D) region targets.
            group_weight: (T,) paper weight w of each token's group; required if ``use_group_weights``.
            num_groups: K (int or (T,) tensor); required if ``weight_scale='num_groups'``.
        """
        owner = type(self).__name__
        _check_pair(owner, pred, target)
        per_token = F.smooth_l1_loss(pred, target.to(pred.dtype), reduction='none', beta=self.beta).mean(-1)
        if self.use_group_weights:
            if group_weight is None or group_weight.shape != per_token.shape:
                raise ValueError(f'{owner}: use_group_weights=True needs group_weight of shape '
                                 f'{tuple(per_token.shape)}, got '
                                 f'{None if group_weight is None else tuple(group_weight.shape)}')
            weight = group_weight.to(per_token.dtype).detach()
            if self.weight_scale == 'batch_mean':
                if weight.numel():
                    # All-zero weights (no region of a weighted group) give a zero loss, not a NaN; no host sync.
                    weight = weight / weight.mean().clamp_min(torch.finfo(weight.dtype).tiny)
            elif self.weight_scale == 'num_groups':
                if num_groups is None:
                    raise ValueError(f"{owner}: weight_scale='num_groups' needs num_groups")
                weight = weight * torch.as_tensor(num_groups, dtype=weight.dtype, device=weight.device)
            elif self.weight_scale is not None:
                weight = weight * float(self.weight_scale)
            per_token = per_token * weight
        if per_token.numel() == 0:
            # No token has a target in this batch: a zero that keeps the graph connected.
            return pred.sum() * 0.
        return self.loss_weight * per_token.mean()


@MODELS.register_module()
class TokenFeatureMSELoss(nn.Module):
    """Mean over rows of the channel-averaged squared error: (1/T) sum_i mean_d (pred_id - target_id)^2.

    Used for both stage-2 terms: L_ins (rows = samples) and L_token (rows = masked tokens). Zero rows give
    a graph-connected zero.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        _check_pair(type(self).__name__, pred, target)
        if pred.shape[0] == 0:
            return pred.sum() * 0.
        return self.loss_weight * F.mse_loss(pred, target.to(pred.dtype))
