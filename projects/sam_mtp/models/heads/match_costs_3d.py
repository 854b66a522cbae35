"""3D match costs for mmdet's ``HungarianAssigner`` and the generalised 3D IoU loss.

The costs follow mmdet's ``BaseMatchCost`` interface (``__call__(pred_instances, gt_instances, img_meta)``
returning a ``(num_preds, num_gts)`` cost). They are registered in both mmdet's and mmdet3d's ``TASK_UTILS``:
``HungarianAssigner`` builds its costs with mmdet's registry, which resolves names in the runner's default
scope (mmdet3d) when one is set and in mmdet's own scope otherwise; registering in both makes
``dict(type='BBox3DGIoUCost')`` work in either case. Reference mmdet's own costs as ``mmdet.ClassificationCost``.

Fields read from the ``InstanceData``:

* ``bboxes``: ``(n, 6|7)`` gravity-centre boxes ``(x, y, z, dx, dy, dz[, yaw])``; six columns mean
  axis-aligned boxes (exact closed-form GIoU), seven columns use the exact rotated path.
* ``centers_normalized``: ``(n, 3)`` centres in scene-normalised coordinates.
* ``scores``: ``(n, num_classes + 1)`` logits whose last column is "no object".
"""
from typing import Optional, Union

import torch
from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet3d.registry import MODELS, TASK_UTILS
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .box3d_giou import giou_3d

__all__ = ['BBox3DGIoUCost', 'BBox3DCenterL1Cost', 'BBox3DObjectnessCost', 'GIoU3DLoss']


def _register_task_util(cls):
    """Register ``cls`` in mmdet3d's and mmdet's TASK_UTILS (see module docstring)."""
    TASK_UTILS.register_module(module=cls)
    MMDET_TASK_UTILS.register_module(module=cls)
    return cls


def _require(instances: InstanceData, field: str, cost: str, which: str) -> Tensor:
    if field not in instances:
        raise KeyError(f'{cost}: {which} has no field "{field}" (fields: {list(instances.keys())})')
    return getattr(instances, field)


@_register_task_util
class BBox3DGIoUCost(BaseMatchCost):
    """``-weight * GIoU3D(pred.bboxes, gt.bboxes)``.

    Args:
        weight: cost weight.
        rotated: ``None`` picks the rotated path when both box sets have a yaw column.
        enclosing: ``'aligned'`` (3DETR) or ``'hull'``, see ``box3d_giou``.
    """

    def __init__(self, weight: Union[float, int] = 1., rotated: Optional[bool] = None,
                 enclosing: str = 'aligned') -> None:
        super().__init__(weight=weight)
        self.rotated = rotated
        self.enclosing = enclosing

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        pred = _require(pred_instances, 'bboxes', type(self).__name__, 'pred_instances')
        gt = _require(gt_instances, 'bboxes', type(self).__name__, 'gt_instances')
        if pred.shape[-1] != gt.shape[-1]:
            raise ValueError(f'{type(self).__name__}: pred and gt boxes must have the same number of columns, '
                             f'got {pred.shape[-1]} and {gt.shape[-1]}')
        return -giou_3d(pred, gt, rotated=self.rotated, enclosing=self.enclosing) * self.weight


@_register_task_util
class BBox3DCenterL1Cost(BaseMatchCost):
    """``weight * ||c_pred - c_gt||_1`` on box centres.

    Args:
        weight: cost weight.
        normalized: use ``centers_normalized`` (scene-normalised, scale-free; 3DETR's choice) instead of
            the metric centres ``bboxes[:, :3]``.
    """

    def __init__(self, weight: Union[float, int] = 1., normalized: bool = True) -> None:
        super().__init__(weight=weight)
        self.normalized = normalized

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        name = type(self).__name__
        if self.normalized:
            pred = _require(pred_instances, 'centers_normalized', name, 'pred_instances')
            gt = _require(gt_instances, 'centers_normalized', name, 'gt_instances')
        else:
            pred = _require(pred_instances, 'bboxes', name, 'pred_instances')[:, :3]
            gt = _require(gt_instances, 'bboxes', name, 'gt_instances')[:, :3]
        return torch.cdist(pred, gt, p=1) * self.weight


@_register_task_util
class BBox3DObjectnessCost(BaseMatchCost):
    """``-weight * P(object)`` with ``P(object) = 1 - softmax(scores)[:, -1]``, the same for every gt."""

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        scores = _require(pred_instances, 'scores', type(self).__name__, 'pred_instances')
        objectness = 1 - scores.softmax(-1)[:, -1]
        return (-objectness * self.weight)[:, None].expand(-1, len(gt_instances))


@MODELS.register_module()
class GIoU3DLoss(nn.Module):
    """``loss_weight * sum(weight * (1 - GIoU3D(pred, target))) / avg_factor`` over aligned box pairs.

    Args:
        rotated: ``None`` picks the rotated path when both box sets have a yaw column.
        enclosing: ``'aligned'`` (3DETR) or ``'hull'``, see ``box3d_giou``.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``.
        loss_weight: scalar weight.
    """

    def __init__(self, rotated: Optional[bool] = None, enclosing: str = 'aligned', reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.enclosing = enclosing
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f'GIoU3DLoss: reduction must be mean, sum or none, got {reduction!r}')
        self.rotated = rotated
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None, reduction_override: Optional[str] = None) -> Tensor:
        reduction = reduction_override or self.reduction
        if pred.shape[0] == 0:
            return pred.sum() * 0
        loss = 1 - giou_3d(pred, target, aligned=True, rotated=self.rotated, enclosing=self.enclosing)
        if weight is not None:
            loss = loss * weight
        if reduction == 'none':
            return loss * self.loss_weight
        if reduction == 'sum' or avg_factor is None:
            total = loss.sum() if reduction == 'sum' else loss.mean()
        else:
            total = loss.sum() / avg_factor
        return total * self.loss_weight
