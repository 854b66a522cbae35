"""Chamfer-L2 distance between point groups, the reconstruction loss of Point-MAE and Bridge3D.

Reference: Pang-Yatian/Point-MAE ``extensions/chamfer_dist`` (``ChamferDistanceL2``, the ``cdl2`` loss of
``cfgs/pretrain.yaml``; Bridge3D's ``Pretrain/extensions/chamfer_dist`` is the same extension). Its CUDA kernel
returns, for every point, the *squared* Euclidean distance to the nearest point of the other cloud, and
``ChamferDistanceL2.forward`` returns ``mean(dist1) + mean(dist2)``: each direction averaged over all points of
all groups, the two directions summed (not halved, unlike its L1 variant). With equal point counts per group,
that global mean equals the mean over groups of the per-group value, which is what ``reduction='none'`` returns.

This is plain torch (no extension to build, runs on CPU): the nearest neighbours are found without gradient,
then the squared distances of the matched pairs are recomputed exactly, so values and gradients
(2 (a - b) for each matched pair) are those of the reference kernel.
"""
import torch
from mmdet3d.registry import MODELS
from torch import Tensor, nn

REDUCTIONS = ('mean', 'none')


def _nearest_sq_dist(src: Tensor, dst: Tensor) -> Tensor:
    """(..., N, 3), (..., M, 3) -> (..., N): squared distance of each src point to its nearest dst point."""
    with torch.no_grad():
        # Matmul-based distances are only used to *choose* the neighbour; the value is recomputed below.
        nearest = torch.cdist(src.detach().float(), dst.detach().float()).argmin(dim=-1)  # (..., N)
    matched = torch.gather(dst, -2, nearest.unsqueeze(-1).expand(*nearest.shape, dst.shape[-1]))
    return (src - matched).pow(2).sum(-1)


def chamfer_l2(pred: Tensor, target: Tensor, reduction: str = 'mean') -> Tensor:
    """Chamfer-L2 of point groups, as Point-MAE's ``ChamferDistanceL2``.

    Args:
        pred: (..., K1, 3) predicted groups, e.g. (B, G, K, 3) or (N, K, 3).
        target: (..., K2, 3) target groups with the same leading shape as ``pred``.
        reduction: ``'mean'``: a scalar, mean over all pred points of the squared distance to the nearest
            target point of the same group plus the mean over all target points of the squared distance to the
            nearest pred point (the reference's value). ``'none'``: the per-group value, shape ``(...)``.

    Zero groups give a graph-connected zero for ``'mean'``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f'chamfer_l2: reduction must be one of {REDUCTIONS}, got {reduction!r}')
    if (pred.dim() < 2 or target.dim() != pred.dim() or pred.shape[-1] != 3 or target.shape[-1] != 3
            or pred.shape[:-2] != target.shape[:-2]):
        raise ValueError(f'chamfer_l2: pred and target must be (..., K, 3) groups with the same leading shape, '
                         f'got {tuple(pred.shape)} and {tuple(target.shape)}')
    target = target.to(pred.dtype)
    pred_to_target = _nearest_sq_dist(pred, target)  # (..., K1)
    target_to_pred = _nearest_sq_dist(target, pred)  # (..., K2)
    if reduction == 'none':
        return pred_to_target.mean(-1) + target_to_pred.mean(-1)
    if pred_to_target.numel() == 0:
        return pred.sum() * 0.
    return pred_to_target.mean() + target_to_pred.mean()


@MODELS.register_module()
class ChamferL2Loss(nn.Module):
    """``loss_weight * chamfer_l2(pred, target)``: Chamfer-L2 of (..., K, 3) point groups (see :func:`chamfer_l2`).

    Args:
        loss_weight (float): Default 1.0 (Point-MAE and Bridge3D use the bare distance).
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def extra_repr(self) -> str:
        return f'loss_weight={self.loss_weight}'

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.loss_weight * chamfer_l2(pred, target)
