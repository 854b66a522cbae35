"""3DETR's random-cuboid augmentation as an mmdet3d transform."""
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

__all__ = ['RandomCuboidCrop']

# Per-point annotations that must follow the kept points.
_PER_POINT_KEYS = ('pts_semantic_mask', 'pts_instance_mask')


@TRANSFORMS.register_module()
class RandomCuboidCrop(BaseTransform):
    """Crop the scene to a random axis-aligned cuboid, as in 3DETR's training recipe.

    Each trial draws per-axis crop fractions uniformly from ``crop_factor`` and rejects them unless at least one
    pair of axes has a fraction ratio of ``min_aspect`` or more (3DETR's permissive aspect rule). The cuboid
    (fractions times the scene's extent) is centred on a random input point and accepted when it contains at
    least ``min_points`` points and, if the scene has boxes, keeps at least one box. A box is kept when its
    gravity centre lies inside the bounding box of the kept points (3DETR's "center" policy); boxes are not
    clipped. After ``max_trials`` failures the sample is left unchanged.

    Required keys: ``points``. Modified keys: ``points``, and when present ``gt_bboxes_3d``, ``gt_labels_3d``,
    ``pts_semantic_mask``, ``pts_instance_mask``. Randomness comes from numpy's global generator, like the
    other mmdet3d transforms, so mmengine's seeding makes it reproducible.

    Args:
        min_points: minimum number of points inside an accepted cuboid (3DETR ScanNet: 30000).
        crop_factor: range of the per-axis crop fraction of the scene extent (3DETR: 0.5 to 1.0).
        min_aspect: aspect threshold of the rule above (3DETR: 0.8).
        max_trials: attempts before giving up (3DETR: 100).
        prob: probability of trying to crop at all.
    """

    def __init__(self, min_points: int = 30000, crop_factor: Tuple[float, float] = (0.5, 1.0),
                 min_aspect: float = 0.8, max_trials: int = 100, prob: float = 1.0) -> None:
        lo, hi = crop_factor
        if not 0 < lo <= hi <= 1:
            raise ValueError(f'RandomCuboidCrop: crop_factor must satisfy 0 < low <= high <= 1, got {crop_factor}')
        if not 0 < min_aspect <= 1:
            raise ValueError(f'RandomCuboidCrop: min_aspect must lie in (0, 1], got {min_aspect}')
        if min_points < 1 or max_trials < 1 or not 0 <= prob <= 1:
            raise ValueError(f'RandomCuboidCrop: need min_points >= 1, max_trials >= 1, prob in [0, 1]; got '
                             f'{min_points}, {max_trials}, {prob}')
        self.min_points = min_points
        self.crop_factor = (float(lo), float(hi))
        self.min_aspect = min_aspect
        self.max_trials = max_trials
        self.prob = prob

    def _draw_cuboid(self, xyz: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        extent = xyz.max(axis=0) - xyz.min(axis=0)
        fractions = np.random.uniform(*self.crop_factor, size=3)
        pair_aspects = [min(fractions[i], fractions[j]) / max(fractions[i], fractions[j])
                        for i, j in ((0, 1), (0, 2), (1, 2))]
        if max(pair_aspects) < self.min_aspect:
            return None
        centre = xyz[np.random.randint(len(xyz))]
        half = fractions * extent / 2
        return centre - half, centre + half

    def transform(self, input_dict: dict) -> dict:
        if 'points' not in input_dict:
            raise KeyError('RandomCuboidCrop: the sample has no "points"; load them first (LoadPointsFromFile)')
        if np.random.rand() >= self.prob:
            return input_dict
        points = input_dict['points']
        xyz = points.coord.numpy() if hasattr(points, 'coord') else np.asarray(points)[:, :3]
        if len(xyz) == 0:
            name = input_dict.get('lidar_path', input_dict.get('sample_idx', '?'))
            raise ValueError(f'RandomCuboidCrop: sample {name} has no points to crop (empty points file, or an '
                             'earlier transform removed them all)')
        boxes = input_dict.get('gt_bboxes_3d')
        box_centres = None if boxes is None or len(boxes) == 0 else boxes.gravity_center.numpy()
        for _ in range(self.max_trials):
            cuboid = self._draw_cuboid(xyz)
            if cuboid is None:
                continue
            low, high = cuboid
            point_mask = np.all((xyz >= low) & (xyz <= high), axis=1)
            if point_mask.sum() < self.min_points:
                continue
            box_mask = None
            if box_centres is not None:
                kept = xyz[point_mask]
                box_mask = np.all((box_centres >= kept.min(axis=0)) & (box_centres <= kept.max(axis=0)), axis=1)
                if not box_mask.any():
                    continue
            self._apply(input_dict, point_mask, box_mask)
            return input_dict
        return input_dict

    @staticmethod
    def _apply(input_dict: dict, point_mask: np.ndarray, box_mask: Optional[np.ndarray]) -> None:
        input_dict['points'] = input_dict['points'][point_mask]
        for key in _PER_POINT_KEYS:
            if input_dict.get(key) is not None:
                input_dict[key] = input_dict[key][point_mask]
        if box_mask is not None:
            input_dict['gt_bboxes_3d'] = input_dict['gt_bboxes_3d'][box_mask]
            if input_dict.get('gt_labels_3d') is not None:
                input_dict['gt_labels_3d'] = input_dict['gt_labels_3d'][box_mask]

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(min_points={self.min_points}, crop_factor={self.crop_factor}, '
                f'min_aspect={self.min_aspect}, max_trials={self.max_trials}, prob={self.prob})')
