"""The scene-segment file: one segment id per point of a scene, for SAM-guided fine-tuning.

``<segments_dir>/<sample>.bin`` (default ``<data_root>/scene_segments/``, next to mmdet3d's ``points/``) holds one
raw int64 per point of ``points/<sample>.bin``, in the same order, ``-1`` = in no segment, ids 0..S-1 numbered by
their lowest point index (:func:`compact_segments`). Ids stay below :data:`SEGMENT_ID_LIMIT` = 2**24 because
``LoadSceneSegments`` carries them as a float32 point column, which holds integers exactly only up to 2**24.

A JSON sidecar ``<sample>.json`` says how the file was made: ``method`` (:data:`SEGMENT_METHODS`), ``sam``
true/false, the settings and their fingerprint (labels/runner/output_dir.py), counts. ``tools/make_scene_segments.py``
writes both (labels/segments/); ``LoadSceneSegments`` (datasets/scene_segments.py) reads them with
:func:`load_scene_segments` and :func:`read_segment_meta`, as every other reader does.
"""
import json
import os
from typing import Optional

import numpy as np

from ..fileio import atomic_write_bytes

# Segment ids travel in a float32 point column, which stores integers exactly below 2**24.
SEGMENT_ID_LIMIT = 1 << 24
SEGMENTS_FOLDER = 'scene_segments'
# How a segment file was made: its sidecar's ``method``. Only the geometric fallback is not SAM.
SEGMENT_METHODS = {
    'sam_multi_view': 'SAM masks of posed RGB-D frames, projected onto the points with a depth test and merged '
                      'across views',
    'sam_single_image': "SAM masks of the sample's own image; every point takes the mask under its projection",
    'geometric': 'NOT SAM: graph-based geometric over-segmentation of the point cloud (normals and colours); a '
                 'proxy for data without images, not the paper\'s setting',
}
SAM_METHODS = ('sam_multi_view', 'sam_single_image')


def segment_file(segments_dir: str, sample: str) -> str:
    """``<segments_dir>/<sample>.bin``."""
    return os.path.join(segments_dir, f'{sample}.bin')


def scene_segment_path(points_path: str, segment_dir: Optional[str] = None) -> str:
    """``<segment_dir>/<name>.bin`` for the points file ``.../<name>.bin``.

    Without ``segment_dir`` the folder is ``scene_segments`` next to the points folder, i.e.
    ``<data_root>/scene_segments/`` for mmdet3d's ``<data_root>/points/<scene>.bin``.
    """
    name = os.path.splitext(os.path.basename(points_path))[0]
    folder = segment_dir if segment_dir is not None else os.path.join(os.path.dirname(os.path.dirname(points_path)),
                                                                       SEGMENTS_FOLDER)
    return segment_file(folder, name)


def segment_meta_path(segment_path: str) -> str:
    """The JSON sidecar ``<sample>.json`` of ``<sample>.bin``."""
    return os.path.splitext(segment_path)[0] + '.json'


def compact_segments(labels: np.ndarray, min_segment_points: int = 1) -> np.ndarray:
    """Segment ids in the file convention: segments with fewer than ``min_segment_points`` points become -1
    (none), the others are renumbered 0..S-1 in the order of their lowest point index. Returns a new int64
    array; negative input ids mean "none"."""
    labels = np.where(np.asarray(labels) >= 0, labels, -1).astype(np.int64)
    assigned = labels >= 0
    used, first, compact, sizes = np.unique(labels[assigned], return_index=True, return_inverse=True,
                                            return_counts=True)
    rank = np.full(len(used), -1, np.int64)
    big = sizes >= min_segment_points
    order = np.argsort(first[big], kind='stable')
    rank[np.flatnonzero(big)[order]] = np.arange(int(big.sum()))
    labels[assigned] = rank[compact]
    return labels


def save_scene_segments(path: str, labels: np.ndarray, meta: Optional[dict] = None) -> None:
    """Atomically write segment ids as raw int64 (like mmdet3d's ``instance_mask/<scene>.bin``).

    With ``meta`` its JSON sidecar is written first, so a finished ``.bin`` always has its description."""
    if meta is not None:
        method = meta.get('method')
        if method not in SEGMENT_METHODS:
            raise ValueError(f'{path}: unknown segment method {method!r}; known: {sorted(SEGMENT_METHODS)}')
        meta = dict(meta, sam=method in SAM_METHODS, description=SEGMENT_METHODS[method],
                    format='raw int64 per point of the points file, same order, -1 = no segment')
        atomic_write_bytes(segment_meta_path(path), (json.dumps(meta, indent=1, sort_keys=True) + '\n').encode())
    atomic_write_bytes(path, np.ascontiguousarray(labels, np.int64).tobytes())


def read_segment_meta(path: str, backend_args: Optional[dict] = None) -> Optional[dict]:
    """The sidecar of segment file ``path`` (None when there is none); a corrupt sidecar names the file.
    ``backend_args``: mmengine file backend arguments (as for ``LoadPointsFromFile``)."""
    from mmengine.fileio import get
    meta_path = segment_meta_path(path)
    try:
        return json.loads(get(meta_path, backend_args=backend_args))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise ValueError(f'{meta_path}: cannot read the segment description ({err})') from err


def load_scene_segments(path: str, num_points: Optional[int] = None, backend_args: Optional[dict] = None,
                        mismatch_hint: str = '') -> np.ndarray:
    """The segment ids of ``path`` (int64), checked: whole int64s, ``num_points`` of them when given, every id in
    ``[-1, SEGMENT_ID_LIMIT)``. Errors name the file; ``mismatch_hint`` is appended to a wrong-length message.
    ``backend_args``: mmengine file backend arguments (as for ``LoadPointsFromFile``)."""
    from mmengine.fileio import get
    try:
        data = get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise FileNotFoundError(f'{path}: scene segment file does not exist') from None
    if len(data) % 8:
        raise ValueError(f'{path}: size {len(data)} bytes is not a multiple of 8 (expected raw int64)')
    labels = np.frombuffer(data, np.int64).copy()
    if num_points is not None and len(labels) != num_points:
        raise ValueError(f'{path}: has {len(labels)} segment ids but the scene has {num_points} points'
                         + (f'; {mismatch_hint}' if mismatch_hint else ''))
    if len(labels) and (labels.min() < -1 or labels.max() >= SEGMENT_ID_LIMIT):
        raise ValueError(f'{path}: segment ids must lie in [-1, {SEGMENT_ID_LIMIT - 1}], found '
                         f'[{labels.min()}, {labels.max()}]')
    return labels


# ---------------------------------------------------------------------------------------------------- points
def count_points(path: str, load_dim: int = 6) -> int:
    """Number of points of an mmdet3d ``points/<sample>.bin`` (float32, ``load_dim`` values per point), from
    its size alone."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: point file does not exist')
    size = os.path.getsize(path)
    if size % (4 * load_dim):
        raise ValueError(f'{path}: {size} bytes is not a whole number of float32 x {load_dim} points '
                         f'(points_load_dim={load_dim})')
    return size // (4 * load_dim)


def load_scene_points(path: str, load_dim: int = 6) -> np.ndarray:
    """(M, load_dim) float32 rows of an mmdet3d ``points/<sample>.bin``."""
    count_points(path, load_dim)
    return np.fromfile(path, np.float32).reshape(-1, load_dim)
