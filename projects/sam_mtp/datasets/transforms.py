"""Augmentations and packing for pretraining frames; every point op keeps ``point_region`` in step with
``points`` (a dropped or duplicated point takes its region id along)."""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

# Arrays indexed by point that every point-selecting transform must subset together.
POINT_KEYS = ('points', 'point_region', 'colors')


def _select_points(results: dict, index: np.ndarray) -> dict:
    for key in POINT_KEYS:
        if key in results:
            results[key] = results[key][index]
    return results


def _check_points(results: dict, owner: str) -> np.ndarray:
    points = results.get('points')
    if not isinstance(points, np.ndarray) or points.ndim != 2 or points.shape[1] != 3:
        shape = getattr(points, 'shape', None)
        raise ValueError(f'{owner}: results["points"] must be an (N, 3) array, got {shape} '
                         f'({results.get("label_path", "unknown file")})')
    return points


@TRANSFORMS.register_module()
class FrameCenterPoints(BaseTransform):
    """Subtract the mean of the points along ``axes`` ('xyz' or 'xy'; 'xy' keeps heights above the floor of
    gravity-aligned frames). Run it before rotation so frames rotate about their own centre."""

    def __init__(self, axes: str = 'xy'):
        if axes not in ('xy', 'xyz'):
            raise ValueError(f"FrameCenterPoints: axes must be 'xy' or 'xyz', got {axes!r}")
        self.dims = [0, 1] if axes == 'xy' else [0, 1, 2]

    def transform(self, results: dict) -> dict:
        points = _check_points(results, type(self).__name__)
        if len(points):
            points = points.copy()
            points[:, self.dims] -= points[:, self.dims].mean(axis=0)
            results['points'] = points
        return results


@TRANSFORMS.register_module()
class FrameRandomRotScale(BaseTransform):
    """Random rotation about the gravity (z) axis, angle uniform in ``[-rotation_range, rotation_range]``,
    then isotropic scaling by a factor uniform in ``scale_range`` (z, not Bridge3D's y: docs/design_choices.md#q7)."""

    def __init__(self, rotation_range: float = math.pi, scale_range: Tuple[float, float] = (0.8, 1.2)):
        if rotation_range < 0 or len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'FrameRandomRotScale: need rotation_range >= 0 and 0 < scale_range[0] <= '
                             f'scale_range[1], got {rotation_range}, {scale_range}')
        self.rotation_range = rotation_range
        self.scale_range = tuple(scale_range)

    def transform(self, results: dict) -> dict:
        points = _check_points(results, type(self).__name__)
        angle = np.random.uniform(-self.rotation_range, self.rotation_range)
        scale = np.random.uniform(*self.scale_range)
        cos, sin = math.cos(angle), math.sin(angle)
        rotation = np.array([[cos, -sin, 0.], [sin, cos, 0.], [0., 0., 1.]], dtype=np.float32)
        results['points'] = (points @ rotation.T * scale).astype(np.float32)
        results['rot_angle'] = angle
        results['scale_factor'] = scale
        return results


@TRANSFORMS.register_module()
class FrameRandomJitter(BaseTransform):
    """Add Gaussian noise of std ``sigma`` clipped to ``[-clip, clip]`` to every coordinate."""

    def __init__(self, sigma: float = 0.01, clip: float = 0.05):
        if sigma < 0 or clip < 0:
            raise ValueError(f'FrameRandomJitter: sigma and clip must be >= 0, got {sigma}, {clip}')
        self.sigma = sigma
        self.clip = clip

    def transform(self, results: dict) -> dict:
        points = _check_points(results, type(self).__name__)
        noise = np.clip(np.random.normal(0., self.sigma, points.shape), -self.clip, self.clip)
        results['points'] = (points + noise).astype(np.float32)
        return results


@TRANSFORMS.register_module()
class FrameRandomDropout(BaseTransform):
    """Drop a random fraction, uniform in ``[0, max_ratio]``, of the points (at least one is kept)."""

    def __init__(self, max_ratio: float = 0.2):
        if not 0 <= max_ratio < 1:
            raise ValueError(f'FrameRandomDropout: max_ratio must be in [0, 1), got {max_ratio}')
        self.max_ratio = max_ratio

    def transform(self, results: dict) -> dict:
        points = _check_points(results, type(self).__name__)
        num = len(points)
        num_drop = min(int(np.random.uniform(0, self.max_ratio) * num), max(num - 1, 0))
        if num_drop:
            keep = np.sort(np.random.permutation(num)[num_drop:])
            _select_points(results, keep)
        return results


@TRANSFORMS.register_module()
class FrameSamplePoints(BaseTransform):
    """Sample a fixed number of points: without replacement when there are enough, else all points plus
    random repeats (Bridge3D's 20,000). ``num_points=None`` keeps every point (variable size; the collate
    pads)."""

    def __init__(self, num_points: Optional[int] = 20000):
        if num_points is not None and num_points < 1:
            raise ValueError(f'FrameSamplePoints: num_points must be >= 1 or None, got {num_points}')
        self.num_points = num_points

    def transform(self, results: dict) -> dict:
        points = _check_points(results, type(self).__name__)
        num = len(points)
        if self.num_points is None or num == self.num_points:
            return results
        if num == 0:
            raise ValueError(f'FrameSamplePoints: frame has no points ({results.get("label_path", "unknown")})')
        if num > self.num_points:
            index = np.random.choice(num, self.num_points, replace=False)
        else:
            index = np.concatenate([np.arange(num), np.random.choice(num, self.num_points - num, replace=True)])
        return _select_points(results, index)


@TRANSFORMS.register_module()
class PackFrameInputs(BaseTransform):
    """Pack a frame into ``dict(inputs=dict(points, point_region), data_samples=dict(...))`` of tensors.

    ``data_samples`` keeps the region targets (``region_feat``, ``region_group``, ``region_weight``),
    ``num_groups`` and the meta keys in ``meta_keys`` that are present; ``sam_mtp_collate`` pads them.
    """

    REGION_KEYS = ('region_feat', 'region_group', 'region_weight')

    def __init__(self, meta_keys: Sequence[str] = ('label_path', 'sample_idx', 'scene_id', 'frame_id',
                                                  'rot_angle', 'scale_factor')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        points = _check_points(results, type(self).__name__)
        point_region = np.asarray(results['point_region'])
        if point_region.shape != (len(points), ):
            raise ValueError(f'PackFrameInputs: point_region has shape {point_region.shape} for {len(points)} '
                             f'points ({results.get("label_path", "unknown file")})')
        inputs = dict(points=torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
                      point_region=torch.from_numpy(point_region.astype(np.int64)))
        samples = {k: torch.from_numpy(np.ascontiguousarray(results[k])) for k in self.REGION_KEYS if k in results}
        samples['num_groups'] = int(results.get('num_groups', 1))
        samples['metainfo'] = {k: results[k] for k in self.meta_keys if k in results}
        return dict(inputs=inputs, data_samples=samples)
