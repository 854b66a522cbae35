"""Bridge3D's pretraining data: the SAM-MTP frame labels plus the text targets and a frame-level image target."""
from typing import List, Sequence

import numpy as np
import torch
from mmdet3d.registry import DATASETS, TRANSFORMS
from mmengine.registry import FUNCTIONS

from projects.sam_mtp.labels.formats.frame_labels import LabelFormatError, load_frame_labels

from .collate import sam_mtp_collate
from .frame_dataset import SamMtpFrameDataset
from .transforms import PackFrameInputs

TEXT_METAINFO = ('class_names', 'class_text_feat')
TEXT_FRAME_ARRAYS = ('region_class', 'caption_feat')
_MISSING_TEXT_HINT = ('Bridge3D needs the text targets; add them to the labels with tools/add_text_labels.py '
                      '(docs/pretraining.md, "Bridge3D pretraining")')


@DATASETS.register_module()
class Bridge3DFrameDataset(SamMtpFrameDataset):
    """:class:`SamMtpFrameDataset` items plus what Bridge3D distils besides the region features:

    * ``region_class`` (R,) int64: the class of every SAM region, 0 = none (background);
    * ``region_text_feat`` (R, T) float32: the CLIP text feature of that class (row ``c - 1`` of the split's
      ``class_text_feat``), zeros for class 0;
    * ``caption_feat`` (T,) float32: the CLIP text feature of the frame's caption;
    * ``scene_feat`` (D,) float32: the frame's image feature, the mean of the 2D features over the pixels of
      all SAM regions (region features weighted by ``region_area``), i.e. the mean-pooled patch features of
      the masked part of the image.

    The split info's metainfo must hold ``class_names`` (C names) and ``class_text_feat`` (C, T); every frame
    ``region_class`` and ``caption_feat`` (``labels/formats/frame_labels.py``). Labels without them are refused when the
    dataset is built, before any training step, by a ``LabelFormatError`` naming the info file or the first
    frame's file; a later frame without them is refused when it is loaded.
    """

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        meta = self._metainfo
        missing = [k for k in TEXT_METAINFO if meta.get(k) is None]
        if missing:
            raise LabelFormatError(self.ann_file, f'metainfo has no {missing}: {_MISSING_TEXT_HINT}')
        text = np.asarray(meta['class_text_feat'], dtype=np.float32)
        if text.ndim != 2 or text.shape[0] != len(meta['class_names']) or not np.isfinite(text).all():
            raise LabelFormatError(self.ann_file, f'class_text_feat has shape {text.shape} for '
                                   f'{len(meta["class_names"])} class names (or non-finite values)')
        self._class_text_feat = text
        if data_list:
            first = data_list[0]['label_path']
            lacking = [k for k in TEXT_FRAME_ARRAYS if k not in load_frame_labels(first)]
            if lacking:
                raise LabelFormatError(first, f'has no {lacking}: {_MISSING_TEXT_HINT}')
        return data_list

    def extra_frame_results(self, arrays: dict, path: str) -> dict:
        lacking = [k for k in TEXT_FRAME_ARRAYS if k not in arrays]
        if lacking:
            raise LabelFormatError(path, f'has no {lacking}: {_MISSING_TEXT_HINT}')
        text = self._class_text_feat
        region_class = arrays['region_class'].astype(np.int64)
        if region_class.size and region_class.max() > len(text):
            raise LabelFormatError(path, f'region_class {int(region_class.max())} is beyond the split\'s '
                                   f'{len(text)} class names')
        caption_feat = arrays['caption_feat'].astype(np.float32)
        if caption_feat.shape != (text.shape[1], ):
            raise LabelFormatError(path, f'caption_feat has shape {caption_feat.shape}, the class text features '
                                   f'{text.shape[1]} channels')
        region_text_feat = np.zeros((len(region_class), text.shape[1]), dtype=np.float32)
        named = region_class > 0
        region_text_feat[named] = text[region_class[named] - 1]
        region_feat = arrays['region_feat'].astype(np.float32)
        area = arrays['region_area'].astype(np.float64)
        weight = area / area.sum() if area.sum() > 0 else np.full(len(area), 1. / max(len(area), 1))
        scene_feat = (weight[:, None] * region_feat).sum(axis=0).astype(np.float32)
        return dict(region_class=region_class, region_text_feat=region_text_feat, caption_feat=caption_feat,
                    scene_feat=scene_feat)


@TRANSFORMS.register_module()
class PackBridge3DInputs(PackFrameInputs):
    """:class:`PackFrameInputs` plus Bridge3D's region-aligned (``region_class``, ``region_text_feat``) and
    frame-level (``scene_feat``, ``caption_feat``) targets in ``data_samples``."""

    REGION_KEYS = PackFrameInputs.REGION_KEYS + ('region_class', 'region_text_feat')
    FRAME_KEYS = ('scene_feat', 'caption_feat')

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        for key in self.REGION_KEYS[len(PackFrameInputs.REGION_KEYS):] + self.FRAME_KEYS:
            if key not in results:
                raise ValueError(f'{type(self).__name__}: no {key!r} for {results.get("label_path", "a frame")} '
                                 '(load the frames with Bridge3DFrameDataset)')
            packed['data_samples'][key] = torch.from_numpy(np.ascontiguousarray(results[key]))
        return packed


@FUNCTIONS.register_module()
def bridge3d_collate(data_batch: Sequence[dict]) -> dict:
    """``sam_mtp_collate`` plus Bridge3D's targets: ``region_class`` (B, R_max) padded with 0 (no class),
    ``region_text_feat`` (B, R_max, T) padded with zeros, ``scene_feat`` (B, D) and ``caption_feat`` (B, T)."""
    batch = sam_mtp_collate(data_batch)
    samples = [item['data_samples'] for item in data_batch]
    max_regions = batch['data_samples']['region_feat'].shape[1]
    text_dims = {s['region_text_feat'].shape[1] for s in samples} | {s['caption_feat'].shape[0] for s in samples}
    if len(text_dims) != 1:
        paths = [s.get('metainfo', {}).get('label_path', '?') for s in samples]
        raise ValueError(f'bridge3d_collate: frames have different text feature widths {sorted(text_dims)}: {paths}')
    region_class = torch.zeros(len(samples), max_regions, dtype=torch.long)
    region_text_feat = torch.zeros(len(samples), max_regions, text_dims.pop(), dtype=torch.float32)
    for b, s in enumerate(samples):
        r = len(s['region_class'])
        region_class[b, :r] = s['region_class'].long()
        region_text_feat[b, :r] = s['region_text_feat'].float()
    batch['data_samples'].update(
        region_class=region_class, region_text_feat=region_text_feat,
        scene_feat=torch.stack([s['scene_feat'].float() for s in samples]),
        caption_feat=torch.stack([s['caption_feat'].float() for s in samples]))
    return batch
