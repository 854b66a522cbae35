"""mmdet3d's GroupFree3D head with the oriented-box (SUN RGB-D) training targets fixed.

mmdet3d 1.4.0's ``GroupFree3DHead._get_targets_single`` labels the points of each ground-truth box, when the
boxes are oriented (``bbox_coder.with_rot=True``), with ``gt_bboxes_3d.points_in_boxes_part(points)`` and then
reads column ``i`` of the result as "points inside box i". ``points_in_boxes_part`` returns one box index per
point, shape ``(N,)``, so the first training step fails with ``IndexError: too many indices for tensor of
dimension 1``; the ``(N, M)`` point-in-box matrix the code expects is ``points_in_boxes_all``'s (mmdet3d's
VoteHead uses that one in the same place). mmdet3d ships no SUN RGB-D GroupFree3D config, so its own tests never
take this path. Axis-aligned datasets (ScanNet) take the other branch and are unaffected.

:class:`RotatedBoxGroupFree3DHead` hands ``_get_targets_single`` boxes whose ``points_in_boxes_part`` is
``points_in_boxes_all``; everything else is mmdet3d's head unchanged.
"""
from typing import Dict

from mmdet3d.models.dense_heads import GroupFree3DHead
from mmdet3d.registry import MODELS
from mmdet3d.structures import BaseInstance3DBoxes

__all__ = ['RotatedBoxGroupFree3DHead', 'with_points_in_boxes_all']

_FIXED_BOX_TYPES: Dict[type, type] = {}


def with_points_in_boxes_all(boxes: BaseInstance3DBoxes) -> BaseInstance3DBoxes:
    """The same boxes, of a subclass of their type whose ``points_in_boxes_part`` returns the ``(N, M)`` matrix
    of ``points_in_boxes_all``. The subclass survives ``.to()`` and ``.new_box()`` (both rebuild ``type(self)``).
    """
    box_type = type(boxes)
    fixed = _FIXED_BOX_TYPES.get(box_type)
    if fixed is None:
        fixed = type(f'{box_type.__name__}WithAllPointsInBoxes', (box_type, ),
                     dict(points_in_boxes_part=box_type.points_in_boxes_all, __module__=__name__))
        _FIXED_BOX_TYPES[box_type] = fixed
    return fixed(boxes.tensor, box_dim=boxes.box_dim, with_yaw=boxes.with_yaw)


@MODELS.register_module()
class RotatedBoxGroupFree3DHead(GroupFree3DHead):
    """``GroupFree3DHead`` that trains on oriented boxes (see the module docstring); same arguments."""

    def _get_targets_single(self, points, gt_bboxes_3d, *args, **kwargs):
        if self.bbox_coder.with_rot:
            gt_bboxes_3d = with_points_in_boxes_all(gt_bboxes_3d)
        return super()._get_targets_single(points, gt_bboxes_3d, *args, **kwargs)
