"""Pretraining dataset over the offline per-frame label files (``labels/formats/frame_labels.py``)."""
import logging
import os.path as osp
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmdet3d.registry import DATASETS
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from projects.sam_mtp.labels.formats.frame_labels import LabelFormatError, load_frame_labels, load_label_info

REQUIRED_METAINFO = ('feature_dim', )
GROUP_METAINFO = ('num_groups', 'group_counts', 'group_weights')


@DATASETS.register_module()
class SamMtpFrameDataset(BaseDataset):
    """One item per RGB-D frame: its points, their SAM region ids and the regions' 2D targets.

    ``ann_file`` is the split info written by ``labels.formats.frame_labels.save_label_info``; its metainfo
    (``feature_dim``,
    ``num_groups``, ``group_counts``, ``group_weights``) becomes the dataset's metainfo. Every
    ``data_list`` entry names its frame's ``.npz`` with ``label_path`` relative to ``data_root``.

    The item given to the pipeline holds ``points`` (N, 3) float32, ``point_region`` (N,) int64 (0 = no
    region, r = row r-1 of the region arrays), ``region_feat`` (R, D) float32, ``region_group`` (R,) int64,
    ``region_weight`` (R,) float32 (the paper's group weight of every region, ``group_weights[group]``),
    ``num_groups`` (K), ``label_path`` and ``sample_idx``.

    Bad input: unreadable or malformed label files raise ``LabelFormatError`` naming the file (format
    checks, NaN targets, mismatched counts), as do a target width other than ``feature_dim`` and regions
    that are not grouped (-1) while ``require_groups``. Frames with no region (R = 0 or no point in any
    region) cannot give a loss: with ``skip_empty_frames`` (default) entries whose info says
    ``num_regions == 0`` are filtered at start-up and the others are replaced by a random frame when
    loaded in training (mmengine's refetch, logged as a warning); otherwise they raise.

    Args:
        ann_file (str): split info file, relative to ``data_root``.
        require_groups (bool): need K-means groups and weights (stage 1 with re-weighting). If False and
            the split has none, every region gets weight 1 and K = 1. Default True.
        skip_empty_frames (bool): Default True.
        load_colors (bool): also pass ``colors`` (N, 3) uint8. Default False.
        cache_frames (bool): keep every frame's arrays in memory after its first read (read and checked once;
            every item still gets its own copies). For small splits that are read many times (the CPU demo:
            reading and unzipping a label file is over half of its loading time); not for ScanNet's ~78k frames.
            Default False.
    """

    METAINFO: dict = dict()

    def __init__(self,
                 ann_file: str = '',
                 data_root: Optional[str] = '',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 require_groups: bool = True,
                 skip_empty_frames: bool = True,
                 load_colors: bool = False,
                 cache_frames: bool = False,
                 **kwargs):
        self.require_groups = require_groups
        self.skip_empty_frames = skip_empty_frames
        self.load_colors = load_colors
        self.cache_frames = cache_frames
        self._frame_cache = {}
        self._group_weights = None
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=pipeline, **kwargs)

    def load_data_list(self) -> List[dict]:
        info = load_label_info(self.ann_file)
        for key, value in info['metainfo'].items():
            self._metainfo.setdefault(key, value)
        missing = [k for k in REQUIRED_METAINFO if k not in self._metainfo]
        if missing:
            raise LabelFormatError(self.ann_file, f'metainfo lacks {missing}')
        self._group_weights = self._check_groups()
        data_list = []
        for i, raw in enumerate(info['data_list']):
            if not isinstance(raw, dict) or 'label_path' not in raw:
                raise LabelFormatError(self.ann_file, f'data_list[{i}] has no "label_path"')
            item = dict(raw)
            item['label_path'] = osp.join(self.data_root or '', raw['label_path'])
            data_list.append(item)
        return data_list

    def _check_groups(self) -> Optional[np.ndarray]:
        """The per-group weights from metainfo, checked; None when the split has no groups."""
        meta = self._metainfo
        if meta.get('group_weights') is None:
            if self.require_groups:
                raise LabelFormatError(
                    self.ann_file, 'metainfo has no group_weights: the regions are not grouped yet (run the '
                    'K-means grouping step of label generation) or set require_groups=False')
            return None
        weights = np.asarray(meta['group_weights'], dtype=np.float32)
        num_groups = int(meta.get('num_groups', weights.size))
        if weights.ndim != 1 or weights.size != num_groups or weights.size == 0:
            raise LabelFormatError(self.ann_file, f'group_weights has shape {weights.shape} but num_groups is '
                                   f'{num_groups}')
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise LabelFormatError(self.ann_file, 'group_weights must be finite and >= 0')
        return weights

    def filter_data(self) -> List[dict]:
        if not self.skip_empty_frames:
            return self.data_list
        kept = [item for item in self.data_list if item.get('num_regions', 1) > 0]
        if len(kept) < len(self.data_list):
            print_log(f'{self.ann_file}: skipped {len(self.data_list) - len(kept)} frames with no region',
                      logger='current', level=logging.WARNING)
        return kept

    def load_frame(self, info: dict) -> Optional[dict]:
        """Read and check one frame; None for a frame with no region when ``skip_empty_frames``."""
        path = info['label_path']
        arrays = self._frame_cache.get(path)
        if arrays is None:
            arrays = load_frame_labels(path)
            if self.cache_frames:
                self._frame_cache[path] = arrays
        region_feat = arrays['region_feat']
        point_region = arrays['point_region'].astype(np.int64)
        num_regions = region_feat.shape[0]
        if num_regions == 0 or not (point_region > 0).any():
            if self.skip_empty_frames:
                print_log(f'{path}: frame has no SAM region with points; replaced by another frame',
                          logger='current', level=logging.WARNING)
                return None
            raise LabelFormatError(path, 'frame has no SAM region with points (set skip_empty_frames=True to '
                                   'skip such frames)')
        feature_dim = int(self._metainfo['feature_dim'])
        if region_feat.shape[1] != feature_dim:
            raise LabelFormatError(path, f'region_feat has {region_feat.shape[1]} channels, the split '
                                   f'metainfo says feature_dim={feature_dim}')
        region_group = arrays['region_group'].astype(np.int64)
        if self._group_weights is not None:
            num_groups = self._group_weights.size
            bad = (region_group < 0) | (region_group >= num_groups)
            if bad.any():
                raise LabelFormatError(path, f'{int(bad.sum())} regions have a group outside [0, {num_groups}) '
                                       f'(e.g. {int(region_group[bad][0])}; -1 = not grouped yet)')
            region_weight = self._group_weights[region_group]
        else:
            num_groups = 1
            region_weight = np.ones(num_regions, dtype=np.float32)
        results = dict(
            points=arrays['points'].astype(np.float32),
            point_region=point_region,
            region_feat=region_feat.astype(np.float32),
            region_group=region_group,
            region_weight=region_weight.astype(np.float32),
            num_groups=num_groups,
            label_path=path)
        if self.load_colors:
            results['colors'] = arrays['colors'].copy()  # the cached array must not reach the transforms
        results.update(self.extra_frame_results(arrays, path))
        return results

    def extra_frame_results(self, arrays: dict, path: str) -> dict:
        """Further items a subclass takes from a frame's arrays (e.g. Bridge3D's text targets); none here."""
        return {}

    def prepare_data(self, idx: int) -> Optional[dict]:
        info = self.get_data_info(idx)
        results = self.load_frame(info)
        if results is None:
            return None
        results['sample_idx'] = idx
        for key in ('scene_id', 'frame_id'):
            if key in info:
                results[key] = info[key]
        return self.pipeline(results)
