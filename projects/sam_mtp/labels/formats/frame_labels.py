"""On-disk format of the offline frame labels: a label root with one compressed ``.npz`` per frame and one
split-level info ``.pkl`` per split, plus what the generation keeps beside them.

This module is the single place that defines the format; label generation writes it, the training datasets
read it. Layout under a label root (:class:`LabelPaths`)::

    <root>/<scene_id>/<frame_id:06d>.npz          per-frame labels (see FRAME_ARRAYS)
    <root>/<split>_labels.pkl                     mmengine BaseDataset annotation file (metainfo + data_list)
    <root>/<split>_groups.json                    K, feature dim, group counts and weights, how they were made
    <root>/<split>_group_centroids.npy            (K, D) unit-norm centroids (reuse them for other splits)
    <root>/label_settings.json                    the output settings the frames were made with (reruns)
    <root>/region_maps/<scene>/<frame_id:06d>.png uint16 region-id map of each frame (scene segments)
    <root>/_work/group_features/<scene>/<frame_id:06d>.npy  float16 max-pooled region features (pass a -> b)
    <root>/_work/<split>/shards/shard-<I>-of-<N>.json        shard reports (labels/runner/jobs.py)

Per-frame arrays (N points, R regions, D feature channels). Region ids in ``point_region`` are 1-based so
that 0 can mean "this point's pixel is in no SAM region"; region ``r`` lives at row ``r - 1`` of every
``region_*`` array.
"""
import glob
import json
import os
import pickle
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..fileio import atomic_write, atomic_write_bytes
from ..runner.output_dir import OutputDirError

LABEL_FORMAT_VERSION = 1

# name -> (dtype, shape description); 'N' points, 'R' regions, 'D' feature channels.
FRAME_ARRAYS = {
    'points': (np.float32, ('N', 3)),        # world xyz (axis-aligned when the scene gives a matrix)
    'colors': (np.uint8, ('N', 3)),          # RGB of each point's colour pixel
    'point_region': (np.int32, ('N', )),     # 0 = no region, else 1..R
    'region_feat': (np.float16, ('R', 'D')),  # mean 2D feature of each region: the distillation target
    'region_group': (np.int32, ('R', )),     # K-means group of each region; -1 = not grouped yet
    'region_area': (np.int32, ('R', )),      # pixels of each region in the mask image
}
OPTIONAL_FRAME_ARRAYS = {
    'point_pixel': (np.int32, ('N', 2)),     # (row, col) of each point in the mask image
    # Bridge3D's text targets (labels/frame_labels/text_labels.py adds them; the split's metainfo holds class_names and
    # class_text_feat (C, T), the CLIP text feature of every class name):
    'region_class': (np.int32, ('R', )),     # 0 = no class (background), c = class_names[c - 1]
    'caption_feat': (np.float16, ('T', )),   # CLIP text feature of the frame's caption
}
# 0-d str array: fingerprint of the output settings the frame was made with (labels/runner/output_dir.py); frames
# written before settings were recorded have none.
SETTINGS_ARRAY = 'settings_fingerprint'


class LabelPaths:
    """Where everything of one label root lives (see the module docstring)."""

    def __init__(self, out_dir: str):
        self.root = out_dir

    @staticmethod
    def frame_rel(scene: str, frame_id: int) -> str:
        return f'{scene}/{frame_id:06d}.npz'

    def frame(self, scene: str, frame_id: int) -> str:
        return os.path.join(self.root, scene, f'{frame_id:06d}.npz')

    def group_features(self, scene: str, frame_id: int) -> str:
        return os.path.join(self.root, '_work', 'group_features', scene, f'{frame_id:06d}.npy')

    def region_map(self, scene: str, frame_id: int) -> str:
        return os.path.join(self.root, 'region_maps', scene, f'{frame_id:06d}.png')

    def shard_dir(self, split: str) -> str:
        return os.path.join(self.root, '_work', split, 'shards')

    def shard_report(self, split: str, index: int, total: int) -> str:
        return os.path.join(self.shard_dir(split), f'shard-{index}-of-{total}.json')

    def merge_lock(self, split: str) -> str:
        return os.path.join(self.root, '_work', split, 'merge.lock')

    def info(self, split: str) -> str:
        return os.path.join(self.root, f'{split}_labels.pkl')

    def settings(self) -> str:
        return os.path.join(self.root, 'label_settings.json')

    def groups(self, split: str) -> str:
        return os.path.join(self.root, f'{split}_groups.json')

    def centroids(self, split: str) -> str:
        return os.path.join(self.root, f'{split}_group_centroids.npy')

    def split_outputs(self) -> List[str]:
        """Split-level outputs and shard reports of every split: they describe the frames of the recorded
        settings."""
        names = ('*_labels.pkl', '*_groups.json', '*_group_centroids.npy',
                 os.path.join('_work', '*', 'shards', '*.json'))
        return sorted(p for name in names for p in glob.glob(os.path.join(glob.escape(self.root), name)))


class LabelFormatError(ValueError):
    """A label file is malformed; the message names the file and the problem."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f'{path}: {problem}')


def group_weights(counts: Sequence[int]) -> np.ndarray:
    """Group-balanced weights of the paper (SAM-MTP §3.4) from the number of regions in each group.

    k_i = (n_i - n_min) / n_max,  tau_i = 1 - k_i,  w_i = tau_i / sum_j tau_j,  over the non-empty groups:
    n_min and n_max are taken over groups with n_i > 0, so the largest group keeps tau = n_min / n_max > 0
    (with n_min = 0 from an empty group it would get weight exactly 0, and every group would move up by one
    step). An empty group (K-means can leave a cluster empty on the full split, and centroids reused from
    another split may attract no region) gets w = 0 and is left out of the normalisation; no region carries
    its id, so its weight is never used.
    """
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f'group counts must be a non-empty 1-D sequence, got shape {n.shape}')
    if (n < 0).any() or n.max() <= 0:
        raise ValueError(f'group counts must be >= 0 with at least one non-empty group, got {n.tolist()}')
    filled = n > 0
    k = (n - n[filled].min()) / n.max()
    tau = np.where(filled, 1.0 - k, 0.0)
    return tau / tau.sum()


def validate_frame_labels(arrays: Dict[str, np.ndarray], path='<in memory>') -> None:
    """Check dtypes, shapes and cross-array consistency; raise LabelFormatError naming ``path``."""
    missing = [k for k in FRAME_ARRAYS if k not in arrays]
    if missing:
        raise LabelFormatError(path, f'missing arrays {missing}')
    sizes = {}
    for name, (dtype, shape) in {**FRAME_ARRAYS, **OPTIONAL_FRAME_ARRAYS}.items():
        if name not in arrays:
            continue
        a = arrays[name]
        if a.dtype != dtype:
            raise LabelFormatError(path, f'array {name!r} has dtype {a.dtype}, expected {np.dtype(dtype)}')
        if a.ndim != len(shape):
            raise LabelFormatError(path, f'array {name!r} has shape {a.shape}, expected {shape}')
        for dim, sym in zip(a.shape, shape):
            if isinstance(sym, int):
                if dim != sym:
                    raise LabelFormatError(path, f'array {name!r} has shape {a.shape}, expected {shape}')
            elif sizes.setdefault(sym, dim) != dim:
                raise LabelFormatError(
                    path, f'array {name!r} has {sym}={dim} but another array has {sym}={sizes[sym]} '
                    f'(mismatched point/region counts)')
    fingerprint = arrays.get(SETTINGS_ARRAY)
    if fingerprint is not None and (fingerprint.ndim != 0 or fingerprint.dtype.kind != 'U'):
        raise LabelFormatError(path, f'array {SETTINGS_ARRAY!r} must be a single string, got {fingerprint.dtype} '
                               f'{fingerprint.shape}')
    num_regions = arrays['region_feat'].shape[0]
    pr = arrays['point_region']
    if pr.size and (pr.min() < 0 or pr.max() > num_regions):
        raise LabelFormatError(
            path, f'point_region values must lie in [0, {num_regions}] (0 = no region), '
            f'found [{pr.min()}, {pr.max()}]')
    if not np.isfinite(arrays['points']).all():
        raise LabelFormatError(path, 'points contain NaN or inf')
    if not np.isfinite(arrays['region_feat'].astype(np.float32)).all():
        raise LabelFormatError(path, 'region_feat contains NaN or inf (a region without a valid target)')
    if 'region_class' in arrays and arrays['region_class'].size and arrays['region_class'].min() < 0:
        raise LabelFormatError(path, f'region_class values must be >= 0 (0 = no class), found '
                               f'{arrays["region_class"].min()}')
    if 'caption_feat' in arrays and not np.isfinite(arrays['caption_feat'].astype(np.float32)).all():
        raise LabelFormatError(path, 'caption_feat contains NaN or inf')


def frame_settings_fingerprint(arrays: Dict[str, np.ndarray]) -> Optional[str]:
    """The settings fingerprint a frame was made with; None for frames written before it was recorded."""
    value = arrays.get(SETTINGS_ARRAY)
    return None if value is None else str(value)


def read_frame_settings_fingerprint(path: str) -> Optional[str]:
    """The settings fingerprint of a frame file, reading only that array (the merge checks every frame)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data[SETTINGS_ARRAY]) if SETTINGS_ARRAY in data.files else None
    except Exception as err:  # zip/zlib/format errors all mean "not a readable label file"
        raise LabelFormatError(path, f'cannot read as .npz ({type(err).__name__}: {err})') from err


def save_frame_labels(path: str, arrays: Dict[str, np.ndarray]) -> None:
    """Validate and atomically write one frame's labels as a compressed ``.npz``."""
    validate_frame_labels(arrays, path)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def load_frame_labels(path: str, validate: bool = True) -> Dict[str, np.ndarray]:
    """Read one frame's labels; every problem is reported as a LabelFormatError naming the file."""
    if not os.path.isfile(path):
        raise LabelFormatError(path, 'label file does not exist')
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as err:  # zip/zlib/format errors all mean "not a readable label file"
        raise LabelFormatError(path, f'cannot read as .npz ({type(err).__name__}: {err})') from err
    if validate:
        validate_frame_labels(arrays, path)
    return arrays


def save_label_info(path: str, metainfo: dict, data_list: List[dict]) -> None:
    """Atomically write the split-level annotation file in mmengine's BaseDataset format."""
    for item in data_list:
        if os.path.isabs(item.get('label_path', '')):
            raise ValueError(f'label_path must be relative to the label root, got {item["label_path"]}')
    info = dict(metainfo=dict(metainfo, label_format_version=LABEL_FORMAT_VERSION), data_list=data_list)
    atomic_write(path, lambda f: pickle.dump(info, f, protocol=pickle.HIGHEST_PROTOCOL))


def load_label_info(path: str) -> dict:
    """Read a split-level annotation file; errors name the file and the problem."""
    if not os.path.isfile(path):
        raise LabelFormatError(path, 'label info file does not exist (run tools/generate_sam_labels.py first)')
    try:
        with open(path, 'rb') as f:
            info = pickle.load(f)
    except Exception as err:
        raise LabelFormatError(path, f'cannot unpickle ({type(err).__name__}: {err})') from err
    if not isinstance(info, dict) or 'data_list' not in info or 'metainfo' not in info:
        raise LabelFormatError(path, 'expected a dict with "metainfo" and "data_list"')
    version: Optional[int] = info['metainfo'].get('label_format_version')
    if version != LABEL_FORMAT_VERSION:
        raise LabelFormatError(path, f'label format version {version}, this code reads {LABEL_FORMAT_VERSION}')
    return info


def save_region_map(path: str, image: np.ndarray) -> None:
    """Atomically write a region map (ids 0..65535) as a 16-bit PNG."""
    import cv2
    if image.max(initial=0) > 65535:
        raise ValueError(f'{path}: more than 65535 regions cannot be stored in a 16-bit PNG')
    ok, buf = cv2.imencode('.png', image.astype(np.uint16))
    if not ok:
        raise RuntimeError(f'{path}: could not encode the region map')
    atomic_write_bytes(path, buf.tobytes())


def read_region_map(path: str) -> np.ndarray:
    """The int32 region map of a ``region_maps/<scene>/<frame_id:06d>.png``."""
    import cv2
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: region map does not exist (generate labels with save_region_maps=True)')
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2:
        raise ValueError(f'{path}: region map cannot be decoded as a single-channel PNG')
    return image.astype(np.int32)


def read_label_settings(out_dir: str) -> Optional[dict]:
    """The recorded ``label_settings.json`` of a label root (None when there is none)."""
    path = LabelPaths(out_dir).settings()
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            recorded = json.load(f)
        if not isinstance(recorded, dict) or not {'settings', 'fingerprint'} <= set(recorded):
            raise ValueError('expected a dict with "settings" and "fingerprint"')
    except (OSError, ValueError) as err:
        raise OutputDirError(f'{path}: cannot read the recorded label settings ({type(err).__name__}: {err}); '
                             f'rerun with --overwrite to record these settings and redo the frames') from err
    return recorded
