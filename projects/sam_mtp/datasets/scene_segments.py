"""Scene-level SAM segments as a point attribute, so fine-tuning can tokenize scenes one token per segment."""
import logging
import os.path as osp
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS
from mmengine.logging import print_log

from projects.sam_mtp.labels.formats.scene_segments import load_scene_segments, read_segment_meta, scene_segment_path

__all__ = ['LoadSceneSegments', 'scene_segment_path']

@TRANSFORMS.register_module()
class LoadSceneSegments(BaseTransform):
    """Append the scene-segment id of every point as a new last point column, attribute ``'segment'``.

    The file ``<segment_dir>/<scene>.bin`` holds one raw int64 per point of the scene's points file, in the same
    order, ``-1`` for points in no segment (as written by ``tools/make_scene_segments.py``). Put
    this transform **right after** ``LoadPointsFromFile``: as a point column the id then follows every later
    sampling, crop, flip and rotation (``PointSample``, ``IndoorPatchPointSample``, ``RandomCuboidCrop``,
    ``GlobalRotScaleTrans`` ... move rows and coordinates, never other columns). The backbone's
    ``segment_channel`` must name the column this transform adds: the number of point columns loaded before it
    (e.g. 3 for ``use_dim=[0, 1, 2]``, 6 with colour, 4 with ``shift_height``).

    The first file read from a folder has its sidecar ``<scene>.json`` logged (how the segments were made); a
    folder of geometric segments (``"sam": false``) gets a warning that they are not SAM's.

    Required keys: ``points``, ``lidar_points['lidar_path']``. Modified keys: ``points``.

    Args:
        segment_dir (str, optional): folder of the segment files; None uses ``scene_segments`` next to the
            points folder (``<data_root>/scene_segments``).
        allow_missing (bool): a scene without a segment file gets ``-1`` everywhere (every point then joins
            FPS fallback tokens) and a warning, instead of a FileNotFoundError. Default False.
        backend_args (dict, optional): mmengine file backend arguments, as for ``LoadPointsFromFile``.
    """

    _described_folders = set()  # folders whose segment method was logged (once per process)

    def __init__(self, segment_dir: Optional[str] = None, allow_missing: bool = False,
                 backend_args: Optional[dict] = None) -> None:
        self.segment_dir = segment_dir
        self.allow_missing = allow_missing
        self.backend_args = backend_args

    def _describe_folder(self, path: str) -> None:
        """Log how the segments of ``path``'s folder were made, once per folder."""
        folder = osp.dirname(path)
        if folder in LoadSceneSegments._described_folders:
            return
        LoadSceneSegments._described_folders.add(folder)
        try:
            meta = read_segment_meta(path, self.backend_args)
        except ValueError:
            meta = None
        if meta is None:
            return  # files made by hand or by an older tool have no sidecar
        method = meta.get('method', '?')
        if meta.get('sam') is False:
            print_log(f'{folder}: scene segments made by {method!r}, NOT SAM ({meta.get("description", "")}); '
                      'SAM-guided tokens follow them, but this is not the paper\'s setting', logger='current',
                      level=logging.WARNING)
        else:
            print_log(f'{folder}: scene segments made by {method!r}', logger='current')

    def _read(self, path: str, num_points: int) -> np.ndarray:
        try:
            segments = load_scene_segments(
                path, num_points, self.backend_args,
                mismatch_hint='put LoadSceneSegments right after LoadPointsFromFile (before any sampling or cropping), '
                'and regenerate the segments if the points file changed')
        except FileNotFoundError as err:
            if not self.allow_missing:
                raise FileNotFoundError(f'{err}; make it with tools/make_scene_segments.py (docs/finetune.md) or set '
                                        'LoadSceneSegments(allow_missing=True)') from None
            print_log(f'{path}: no scene segments, every point is unassigned', logger='current',
                      level=logging.WARNING)
            return np.full(num_points, -1, dtype=np.int64)
        self._describe_folder(path)
        return segments

    def transform(self, results: dict) -> dict:
        points = results.get('points')
        if points is None or not hasattr(points, 'tensor'):
            raise KeyError('LoadSceneSegments: the sample has no loaded "points"; put LoadPointsFromFile first')
        lidar_points = results.get('lidar_points') or {}
        points_path = lidar_points.get('lidar_path', results.get('lidar_path'))
        if points_path is None:
            raise KeyError('LoadSceneSegments: the sample has no lidar_points["lidar_path"] to name its scene')
        attribute_dims = dict(points.attribute_dims or {})
        if 'segment' in attribute_dims:
            raise ValueError(f'LoadSceneSegments: {points_path} already has a "segment" column; the transform '
                             'appears twice in the pipeline')
        path = scene_segment_path(points_path, self.segment_dir)
        segments = self._read(path, len(points))
        column = torch.from_numpy(segments.astype(np.float32)).to(points.tensor.dtype)[:, None]
        attribute_dims['segment'] = points.tensor.shape[1]
        results['points'] = type(points)(torch.cat([points.tensor, column], dim=1),
                                         points_dim=points.tensor.shape[1] + 1, attribute_dims=attribute_dims)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(segment_dir={self.segment_dir!r}, allow_missing={self.allow_missing}, '
                f'backend_args={self.backend_args})')
