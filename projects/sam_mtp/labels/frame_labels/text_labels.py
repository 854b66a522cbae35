"""Bridge3D's text targets, added once to an existing label split (``tools/add_text_labels.py``).

Bridge3D names the objects of every frame with an open-vocabulary segmenter (Tag2Text tags -> Grounding DINO
boxes -> SAM masks, its ``Preprocess/tag2text_SAM.py``) and distils the CLIP text feature of each token's class
name; it also distils the CLIP feature of a Tag2Text caption of the frame. This step turns such per-pixel class
maps and captions, stored next to the frames, into label arrays (``labels/formats/frame_labels.py``):

* per frame ``region_class`` (R,): the class of every SAM region, the most frequent class among its pixels in
  the frame's class map (0 when background wins or no class is in the list);
* per frame ``caption_feat`` (T,): the CLIP text feature of the frame's caption;
* per split (metainfo) ``class_names`` and ``class_text_feat`` (C, T): the CLIP feature of every class name,
  prompt-ensembled; ``text_labels``: the settings they were made with.

Resumable: frames are rewritten atomically and listed in ``_work/<split>/text_labels.json`` with the settings;
a rerun skips the listed frames of the same settings and refuses other settings unless ``overwrite``. The split's
metainfo gets the text entries last, so a split is usable by Bridge3D only once every frame has them.
"""
import json
import logging
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import print_log

from ..fileio import atomic_write_bytes
from ..formats.frame_labels import (
    LabelFormatError,
    LabelPaths,
    load_frame_labels,
    load_label_info,
    read_region_map,
    save_frame_labels,
    save_label_info,
)

TEXT_METAINFO_KEYS = ('class_names', 'class_text_feat', 'text_feature_dim', 'text_labels')


def region_classes(region_map: np.ndarray, class_map: np.ndarray, class_ids: Sequence[int],
                   num_regions: int) -> np.ndarray:
    """(R,) int32: for region r (pixels ``region_map == r``), 1 + the index in ``class_ids`` of the most frequent
    pixel class in ``class_map`` (resized to the region map, nearest), or 0 when pixels of no listed class are the
    most frequent (ties go to the lower index, 0 first). A region without pixels gets 0."""
    import cv2
    if region_map.ndim != 2 or class_map.ndim != 2:
        raise ValueError(f'region and class maps must be 2-D, got {region_map.shape} and {class_map.shape}')
    if class_map.shape != region_map.shape:
        class_map = cv2.resize(class_map, region_map.shape[::-1], interpolation=cv2.INTER_NEAREST)
    lookup = {int(c): i + 1 for i, c in enumerate(class_ids)}
    ids = np.unique(class_map)
    remap = np.zeros(len(ids), dtype=np.int64)
    for j, value in enumerate(ids):
        remap[j] = lookup.get(int(value), 0)
    pixel_class = remap[np.searchsorted(ids, class_map)].ravel()
    regions = region_map.astype(np.int64).ravel()
    if regions.size and regions.max() > num_regions:
        raise ValueError(f'region map has id {regions.max()} but the frame has {num_regions} regions')
    num_classes = len(class_ids) + 1
    votes = np.bincount(regions * num_classes + pixel_class,
                        minlength=(num_regions + 1) * num_classes).reshape(num_regions + 1, num_classes)[1:]
    return np.where(votes.sum(axis=1) > 0, votes.argmax(axis=1), 0).astype(np.int32)


def class_list_caption(region_class: np.ndarray, class_names: Sequence[str]) -> str:
    """Stand-in caption from the classes present (no captioning model here): ``"a room with chair, table and
    sofa."`` in class-list order; ``"an empty room."`` without any."""
    present = [class_names[c - 1] for c in sorted(set(int(c) for c in region_class) - {0})]
    if not present:
        return 'an empty room.'
    listed = present[0] if len(present) == 1 else ', '.join(present[:-1]) + ' and ' + present[-1]
    return f'a room with {listed}.'


class CaptionFiles:
    """Captions from text files ``<frames_root>/<scene>/<folder>/<frame_id><suffix>`` (Bridge3D writes one
    ``<frame>_caption.txt`` per frame with Tag2Text)."""

    def __init__(self, folder: str = 'caption', suffix: str = '_caption.txt'):
        self.folder, self.suffix = folder, suffix

    def __call__(self, frames_root: str, scene: str, frame_id: int, region_class, class_names) -> str:
        path = osp.join(frames_root, scene, self.folder, f'{frame_id}{self.suffix}')
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path}: caption file does not exist')
        with open(path, encoding='utf-8') as f:
            return f.read().strip()


def build_caption_source(cfg: dict) -> Callable:
    """``dict(type='class_list')`` (the stand-in) or ``dict(type='files', folder=..., suffix=...)``."""
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    if kind == 'class_list':
        return lambda frames_root, scene, frame_id, region_class, class_names: class_list_caption(
            region_class, class_names)
    if kind == 'files':
        return CaptionFiles(**cfg)
    raise ValueError(f"captions.type must be 'class_list' or 'files', got {kind!r}")


def read_class_map(frames_root: str, scene: str, frame_id: int, folder: str = 'label',
                   suffix: str = '.png') -> np.ndarray:
    """The per-pixel class ids of a frame: ``<frames_root>/<scene>/<folder>/<frame_id><suffix>``, a single-channel
    PNG or a ``.npy`` (H, W) or (H, W, k) array (channel 0, as Bridge3D's ``pred_matrix``)."""
    import cv2
    path = osp.join(frames_root, scene, folder, f'{frame_id}{suffix}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: class map does not exist')
    image = np.load(path, allow_pickle=False) if suffix.endswith('.npy') else cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is not None and image.ndim == 3:
        image = image[..., 0]
    if image is None or image.ndim != 2:
        raise ValueError(f'{path}: class map cannot be read as a single-channel image')
    return image


def _describe(cfg: Optional[dict]) -> Optional[dict]:
    """Settings that determine the features (not where or how fast they are computed)."""
    return None if cfg is None else {k: v for k, v in cfg.items() if k not in ('device', 'batch_size')}


def add_text_labels(label_root: str, split: str, frames_root: str, text_source, text_source_cfg: dict,
                    class_names: Sequence[str], class_ids: Sequence[int], templates='maskclip',
                    class_maps: Optional[dict] = None, captions: Optional[dict] = None, overwrite: bool = False,
                    flush_every: int = 64) -> Dict[str, int]:
    """Add ``region_class`` and ``caption_feat`` to every frame of ``<label_root>/<split>_labels.pkl`` and the
    class text features to its metainfo (module docstring). Returns counts of frames written and skipped."""
    if len(class_names) != len(class_ids) or not class_names:
        raise ValueError(f'class_names ({len(class_names)}) and class_ids ({len(class_ids)}) must be non-empty '
                         'and of equal length')
    class_maps = dict(dict(folder='label', suffix='.png'), **(class_maps or {}))
    captions = dict(captions or dict(type='class_list'))
    caption_source = build_caption_source(captions)
    paths = LabelPaths(label_root)
    info_path = paths.info(split)
    info = load_label_info(info_path)
    settings = dict(text_source=_describe(text_source_cfg), class_names=list(class_names),
                    class_ids=[int(c) for c in class_ids], templates=templates, class_maps=class_maps,
                    captions=captions)
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as they come back from the files
    progress_path = osp.join(label_root, '_work', split, 'text_labels.json')
    progress = None
    if osp.isfile(progress_path):
        with open(progress_path) as f:
            progress = json.load(f)
    made_with = info['metainfo'].get('text_labels')
    for previous, where in ((made_with, info_path), (progress and progress['settings'], progress_path)):
        if previous is not None and previous != settings and not overwrite:
            changed = sorted(k for k in settings if previous.get(k) != settings[k])
            raise ValueError(f'{where}: text labels were made with other settings ({", ".join(changed)}); '
                             'pass --overwrite to remake them')
    if made_with == settings and not overwrite:
        print_log(f'{info_path}: text labels are complete for these settings', logger='current')
        return dict(written=0, skipped=len(info['data_list']))
    done = set(progress['done']) if progress and progress['settings'] == settings and not overwrite else set()
    if any(k in info['metainfo'] for k in TEXT_METAINFO_KEYS):
        # The split must not look complete while its frames are being remade.
        save_label_info(info_path, {k: v for k, v in info['metainfo'].items() if k not in TEXT_METAINFO_KEYS},
                        info['data_list'])

    def save_progress():
        atomic_write_bytes(progress_path, json.dumps(dict(settings=settings, done=sorted(done))).encode())

    class_text_feat = text_source.class_features(class_names, templates).numpy().astype(np.float32)
    pending: List[tuple] = []

    def flush():
        feats = text_source([caption for *_, caption in pending]).numpy()
        for (label_path, arrays, region_class, _), feat in zip(pending, feats):
            save_frame_labels(label_path, dict(arrays, region_class=region_class,
                                               caption_feat=feat.astype(np.float16)))
            done.add(osp.relpath(label_path, label_root))
        pending.clear()
        save_progress()

    written = 0
    for item in info['data_list']:
        rel = item['label_path']
        if rel in done:
            continue
        label_path = osp.join(label_root, rel)
        arrays = load_frame_labels(label_path)
        scene, frame_id = item['scene_id'], int(item['frame_id'])
        region_map = read_region_map(paths.region_map(scene, frame_id))
        class_map = read_class_map(frames_root, scene, frame_id, **class_maps)
        try:
            region_class = region_classes(region_map, class_map, class_ids, arrays['region_feat'].shape[0])
        except ValueError as err:
            raise LabelFormatError(paths.region_map(scene, frame_id), str(err)) from None
        caption = caption_source(frames_root, scene, frame_id, region_class, class_names)
        pending.append((label_path, arrays, region_class, caption))
        written += 1
        if len(pending) >= flush_every:
            flush()
    if pending:
        flush()
    metainfo = dict(info['metainfo'], class_names=list(class_names), class_text_feat=class_text_feat,
                    text_feature_dim=int(class_text_feat.shape[1]), text_labels=settings)
    save_label_info(info_path, metainfo, info['data_list'])
    if osp.isfile(progress_path):
        os.remove(progress_path)
    skipped = len(info['data_list']) - written
    print_log(f'{info_path}: text labels of {written} frames written, {skipped} already done; '
              f'{len(class_names)} class names, {class_text_feat.shape[1]}-d text features', logger='current',
              level=logging.INFO)
    return dict(written=written, skipped=skipped)
