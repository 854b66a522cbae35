"""The settings of a frame-label run: ``label_cfg`` with its defaults, the output settings a label root records
(labels/runner/output_dir.py) and the check of a label root against them before any frame or model is loaded."""
import json
import logging
import os
from typing import Optional, Tuple

from mmengine.logging import print_log

from ..fileio import atomic_write_bytes
from ..formats.frame_labels import LabelPaths, read_label_settings
from ..runner.output_dir import (
    OutputDirError,
    check_writable,
    settings_fingerprint,
    source_settings,
    stale_output_message,
)

DEFAULT_LABEL_CFG = dict(
    frame_stride=25,          # keep frames whose ScanNet id is a multiple of this
    num_points=20000,         # points per frame (sampled with replacement when fewer are valid)
    mask_size=(480, 640),     # (H, W) of the mask / region map; the colour image is resized to it
    depth_scale=1000.0,       # raw depth units per metre (ScanNet: millimetres)
    max_depth=None,           # metres; farther depth pixels are dropped (None: keep all)
    num_groups=32,            # K of the K-means pseudo-classes
    seed=0,
    save_region_maps=True,    # needed for scene segments
    max_failure_fraction=0.05,
    io_workers=2,             # threads reading frames ahead of the models
    kmeans=dict(max_samples=131072, n_init=3, max_iter=100, tol=1e-6, device='cpu'),
    dataset_name='ScanNet',
)
# label_cfg entries that change a frame file / the groups (output settings, labels/runner/output_dir.py). The others
# choose frames (frame_stride: a frame's file is the same at any stride), describe (dataset_name) or steer the
# run (workers, failure budget, kmeans.device).
FRAME_SETTING_KEYS = ('num_points', 'mask_size', 'depth_scale', 'max_depth', 'seed')
GROUP_SETTING_KEYS = ('num_groups', 'kmeans')


def merge_label_cfg(cfg: Optional[dict]) -> dict:
    out = dict(DEFAULT_LABEL_CFG, kmeans=dict(DEFAULT_LABEL_CFG['kmeans']))
    for key, value in (cfg or {}).items():
        if key not in DEFAULT_LABEL_CFG:
            raise KeyError(f'unknown label setting {key!r}; known: {sorted(DEFAULT_LABEL_CFG)}')
        if key == 'kmeans':
            unknown = set(value) - set(DEFAULT_LABEL_CFG['kmeans'])
            if unknown:
                raise KeyError(f'unknown kmeans setting(s) {sorted(unknown)}')
            out['kmeans'].update(value)
        else:
            out[key] = value
    out['mask_size'] = tuple(int(v) for v in out['mask_size'])
    return out


def label_settings(mask_source, feature_source, label_cfg: Optional[dict] = None, axis_aligned: bool = False) -> dict:
    """The output settings of a label run (labels/runner/output_dir.py): the two sources (configs or objects), the
    label_cfg entries of FRAME_SETTING_KEYS and GROUP_SETTING_KEYS, and whether points are axis-aligned."""
    cfg = merge_label_cfg(label_cfg)
    kept = {k: cfg[k] for k in FRAME_SETTING_KEYS + GROUP_SETTING_KEYS}
    kept['kmeans'] = {k: v for k, v in cfg['kmeans'].items() if k != 'device'}
    return dict(mask_source=source_settings(mask_source), feature_source=source_settings(feature_source),
                label_cfg=kept, axis_aligned=bool(axis_aligned))


def frame_settings_of(settings: dict) -> dict:
    """The part of :func:`label_settings` that decides a frame file (the groups part is redone by every merge)."""
    return dict(settings, label_cfg={k: v for k, v in settings['label_cfg'].items() if k not in GROUP_SETTING_KEYS})


def prepare_label_dir(out_dir: str, settings: dict, overwrite: bool = False) -> Tuple[str, str]:
    """Before any frame or model is loaded: check that ``out_dir`` is writable, refuse a label root made with other
    (or unrecorded) settings unless ``overwrite``, and record ``settings`` in ``label_settings.json``.

    Under ``overwrite`` with changed settings the split files and shard reports of the old settings are deleted
    (frames are redone by the run, which takes only frames with the new fingerprint as finished). Returns the
    fingerprints ``(frames, all)`` for :class:`~.generation.LabelGenerator` and :func:`~.merge.merge_split`.
    """
    check_writable(out_dir)
    paths = LabelPaths(out_dir)
    fingerprint = settings_fingerprint(settings)
    try:
        recorded = read_label_settings(out_dir)
    except OutputDirError:
        if not overwrite:
            raise
        recorded = None  # a corrupt record is replaced, its frames redone
    has_labels = os.path.isdir(os.path.join(out_dir, '_work')) or bool(paths.split_outputs())
    if (recorded is None and has_labels) or (recorded is not None and recorded['fingerprint'] != fingerprint):
        if not overwrite:
            raise OutputDirError(stale_output_message(out_dir, 'labels', recorded and recorded['settings'], settings,
                                                      '--out-dir'))
        stale = paths.split_outputs()
        for path in stale:
            os.remove(path)
        print_log(f'{out_dir}: --overwrite: labels of other settings are redone; removed {len(stale)} split files '
                  f'and shard reports of the old settings', logger='current', level=logging.WARNING)
    frames_fingerprint = settings_fingerprint(frame_settings_of(settings))
    if recorded is None or recorded['fingerprint'] != fingerprint:
        atomic_write_bytes(paths.settings(), (json.dumps(
            dict(fingerprint=fingerprint, frames_fingerprint=frames_fingerprint, settings=settings,
                 tool='tools/generate_sam_labels.py'), indent=1, sort_keys=True) + '\n').encode())
    return frames_fingerprint, fingerprint
