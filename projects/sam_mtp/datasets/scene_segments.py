"""Scene-level SAM segments as a point attribute, so fine-tuning can tokenize scenes one token per segment."""
import json
import logging
import os.path as osp
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.logging import print_log

from mmdet3d.registry import TRANSFORMS

__all__ = ['LoadSceneSegments', 'scene_segment_path']

# Segment ids travel in a float32 point column, which stores integers exactly below 2**24.
_MAX_SEGMENT_ID = (1 << 24) - 1


def scene_segment_path(points_path: str, segment_dir: Optional[str] = None) -> str:
    """``<segment_dir>/<name>.bin`` for the points file ``.../<name>.bin``.

    Without ``segment_dir`` the folder is ``scene_segments`` next to the points folder, i.e.
    ``<data_root>/scene_segments/`` for mmdet3d's ``<data_root>/points/<scene>.bin``.
    """
    name = osp.splitext(osp.basename(points_path))[0]
    folder = segment_dir if segment_dir is not None else osp.join(osp.dirname(osp.dirname(points_path)),
                                                                   'scene_segments')
    return osp.join(folder, f'{name}.bin')


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
            meta = json.loads(get(osp.splitext(path)[0] + '.json', backend_args=self.backend_args))
        except (FileNotFoundError, ValueError, OSError):
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
            data = get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            if not self.allow_missing:
                raise FileNotFoundError(
                    f'{path}: scene segment file does not exist; make it with tools/make_scene_segments.py '
                    '(docs/finetune.md) or set LoadSceneSegments(allow_missing=True)') from None
            print_log(f'{path}: no scene segments, every point is unassigned', logger='current',
                      level=logging.WARNING)
            return np.full(num_points, -1, dtype=np.int64)
        if len(data) % 8:
            raise ValueError(f'{path}: size {len(data)} bytes is not a multiple of 8 (expected raw int64)')
        segments = np.frombuffer(data, dtype=np.int64)
        self._describe_folder(path)
        if len(segments) != num_points:
            raise ValueError(f'{path}: has {len(segments)} segment ids but the scene has {num_points} points; '
                             'put LoadSceneSegments right after LoadPointsFromFile (before any sampling or '
                             'cropping), and regenerate the segments if the points file changed')
        if len(segments) and (segments.min() < -1 or segments.max() > _MAX_SEGMENT_ID):
            raise ValueError(f'{path}: segment ids must lie in [-1, {_MAX_SEGMENT_ID}], found '
                             f'[{segments.min()}, {segments.max()}]')
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
