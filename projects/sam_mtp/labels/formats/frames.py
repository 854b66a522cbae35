"""Finding and reading posed RGB-D frames on disk.

Two per-scene layouts are accepted (detected per scene):

``export`` (what ``tools/export_scannet_frames.py``, ScanNet's SensReader and our synthetic generator write)::

    <frames_root>/<scene>/color/<id>.jpg   depth/<id>.png (uint16)   pose/<id>.txt (4x4 camera-to-world)
    <frames_root>/<scene>/intrinsic/intrinsic_color.txt, intrinsic_depth.txt  (4x4 or 3x3)
                                   extrinsic_color.txt, extrinsic_depth.txt  (4x4, optional: identity)

``flat`` (all files of a frame side by side, e.g. from your own exporter)::

    <frames_root>/<scene>/<id>.jpg, <id>.png (uint16 depth), <id>.txt (pose), intrinsic.txt (colour)

The flat layout stores only the colour intrinsics; the depth intrinsics are then the colour intrinsics scaled
to the depth image size (the two cameras are assumed registered, which holds for ScanNet's exports).

mmdet3d's ``data/scannet/extract_posed_images.py`` writes a folder that looks like the flat layout but cannot be
used: it exports colour, poses and ``intrinsic.txt`` but **no depth**, and it keeps a random subset of 300
frames per scene renamed ``00000``..``00299`` (their index in the subset, not ScanNet's frame id, so a frame
stride would select arbitrary frames). A scene folder with colour frames and not a single depth image is
refused when the frames are listed, with a message that says to export with ``tools/export_scannet_frames.py``.

Frame ids are the integer file stems (ScanNet's frame index in the export layout). A ``frame_stride`` keeps the
frames whose id is a multiple of it, so a folder exported every 25th frame gives the same frames for stride 1,
5 or 25.

Depth units: ``tools/export_scannet_frames.py`` records the recording's ``depth_shift`` (raw units per metre) in
each scene's ``.export_done`` marker; :func:`check_depth_scale` refuses a ``depth_scale`` that disagrees.
"""
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..fileio import atomic_write_bytes
from ..runner.jobs import JobError

# Name of the done-marker tools/export_scannet_frames.py writes last into each scene folder (labels/formats/sens.py).
EXPORT_DONE_MARKER = '.export_done'
FAILURE_KINDS = ('missing_file', 'corrupt_image', 'missing_pose', 'invalid_pose', 'invalid_depth', 'no_mask',
                 'error')
# Failure kinds that mean "this frame has no usable data" rather than "something went wrong": counted and
# reported but not held against --max-failure-fraction (ScanNet has whole stretches of frames without pose).
SKIP_KINDS = ('invalid_pose', )


class FrameError(JobError):
    """A frame cannot be labelled. ``kind`` is one of FAILURE_KINDS; the message names the file."""
    kinds = FAILURE_KINDS

    def __init__(self, kind: str, path, problem: str):
        super().__init__(kind, path, problem)
        self.path = str(path)


@dataclass(frozen=True)
class FrameRecord:
    """Where one frame's files are. Paths may be relative to the working directory."""
    scene: str
    frame_id: int
    scene_dir: str
    layout: str            # 'export' or 'flat'
    color_path: str
    depth_path: str
    pose_path: str

    @property
    def key(self) -> str:
        return f'{self.scene}/{self.frame_id}'


@dataclass
class SceneCameras:
    """Calibration of one scene. Intrinsics are 3x3; extrinsics 4x4 map each camera into the rig frame whose
    pose the ``pose`` files store (both are identity for ScanNet). ``intrinsic_depth`` is None when it has to
    be derived from the colour intrinsics (flat layout)."""
    intrinsic_color: np.ndarray
    intrinsic_depth: Optional[np.ndarray]
    extrinsic_color: np.ndarray
    extrinsic_depth: np.ndarray


@dataclass
class FrameData:
    """One loaded frame: RGB uint8 colour, depth in metres (0 = invalid) and calibration resolved for these
    image sizes."""
    record: FrameRecord
    color: np.ndarray
    depth: np.ndarray
    pose: np.ndarray
    intrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_color: np.ndarray
    extrinsic_depth: np.ndarray


def _read_matrix(path: str, what: str) -> np.ndarray:
    try:
        mat = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: cannot read {what} ({err})') from err
    if mat.shape not in ((3, 3), (4, 4)):
        raise ValueError(f'{path}: {what} must be a 3x3 or 4x4 matrix, got shape {mat.shape}')
    return mat


def read_intrinsic(path: str) -> np.ndarray:
    """3x3 pinhole intrinsics from a 3x3 or 4x4 text matrix."""
    return _read_matrix(path, 'intrinsic matrix')[:3, :3]


def read_extrinsic(path: str) -> np.ndarray:
    mat = _read_matrix(path, 'extrinsic matrix')
    if mat.shape != (4, 4):
        raise ValueError(f'{path}: extrinsic matrix must be 4x4, got shape {mat.shape}')
    return mat


def read_axis_align_matrix(meta_path: str) -> Optional[np.ndarray]:
    """The ``axisAlignment = m00 ... m33`` line of a ScanNet scene meta file ``<scene>.txt`` as a 4x4 matrix
    (raw -> aligned).

    Returns None when the file has no such line (ScanNet's test scenes); raises naming the file when it is
    missing or the line is malformed.
    """
    if not os.path.isfile(meta_path):
        raise FileNotFoundError(f'{meta_path}: ScanNet meta file does not exist')
    with open(meta_path) as f:
        for line in f:
            key, _, value = line.partition('=')
            if key.strip() != 'axisAlignment':
                continue
            try:
                values = [float(v) for v in value.split()]
            except ValueError as err:
                raise ValueError(f'{meta_path}: malformed axisAlignment line ({err})') from err
            if len(values) != 16 or not np.isfinite(values).all():
                raise ValueError(f'{meta_path}: axisAlignment must have 16 numbers, all finite, got {len(values)}')
            return np.asarray(values, np.float64).reshape(4, 4)
    return None


def load_axis_align_matrix(meta_path: str) -> np.ndarray:
    """:func:`read_axis_align_matrix`, the identity when the file has no axisAlignment (as mmdet3d's converter)."""
    matrix = read_axis_align_matrix(meta_path)
    return np.eye(4) if matrix is None else matrix


def scene_axis_align(axis_align_root: Optional[str], scene: str) -> Optional[np.ndarray]:
    """Axis-align matrix from ``<axis_align_root>/<scene>/<scene>.txt`` (ScanNet's ``scans`` folder), or None
    when no root is given. A missing meta file under a given root is an error (it would silently change the
    coordinate frame of a scene)."""
    if axis_align_root is None:
        return None
    path = os.path.join(axis_align_root, scene, f'{scene}.txt')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: scene meta file with axisAlignment does not exist')
    return read_axis_align_matrix(path)


def export_frame_paths(scene_dir: str, frame_id) -> Tuple[str, str, str]:
    """(colour, depth, pose) files of frame ``frame_id`` (an int or the file stem) in the export layout."""
    return (os.path.join(scene_dir, 'color', f'{frame_id}.jpg'), os.path.join(scene_dir, 'depth', f'{frame_id}.png'),
            os.path.join(scene_dir, 'pose', f'{frame_id}.txt'))


def export_calibration_path(scene_dir: str, name: str) -> str:
    """``intrinsic/<name>.txt`` of the export layout (``intrinsic_color``, ``intrinsic_depth``, ``extrinsic_color``,
    ``extrinsic_depth``)."""
    return os.path.join(scene_dir, 'intrinsic', f'{name}.txt')


def detect_layout(scene_dir: str) -> str:
    if os.path.isdir(os.path.join(scene_dir, 'color')):
        return 'export'
    if os.path.isfile(os.path.join(scene_dir, 'intrinsic.txt')):
        return 'flat'
    raise ValueError(f'{scene_dir}: neither a color/ folder (export layout) nor intrinsic.txt (flat layout)')


_ID_STEM = re.compile(r'^\d+$')


def list_scene_frames(scene_dir: str, frame_stride: int = 25, scene: Optional[str] = None) -> List[FrameRecord]:
    """Frames of one scene whose id is a multiple of ``frame_stride``, sorted by id."""
    if frame_stride < 1:
        raise ValueError(f'frame_stride must be >= 1, got {frame_stride}')
    scene = scene or os.path.basename(os.path.normpath(scene_dir))
    layout = detect_layout(scene_dir)
    color_dir = os.path.join(scene_dir, 'color') if layout == 'export' else scene_dir
    stems = sorted((int(os.path.splitext(n)[0]), os.path.splitext(n)[0]) for n in os.listdir(color_dir)
                   if n.lower().endswith('.jpg') and _ID_STEM.match(os.path.splitext(n)[0]))
    records = []
    for fid, stem in stems:
        if fid % frame_stride:
            continue
        if layout == 'export':
            paths = export_frame_paths(scene_dir, stem)
        else:
            paths = tuple(os.path.join(scene_dir, f'{stem}{ext}') for ext in ('.jpg', '.png', '.txt'))
        records.append(FrameRecord(scene, fid, scene_dir, layout, *paths))
    if layout == 'flat' and stems and not any(n.lower().endswith('.png') for n in os.listdir(scene_dir)):
        raise ValueError(
            f'{scene_dir}: flat frame folder without depth images (colour .jpg, pose .txt and intrinsic.txt '
            f'only). This is what mmdet3d\'s extract_posed_images.py writes: it exports no depth and renames a '
            f'random subset of 300 frames 00000..00299 instead of keeping ScanNet frame ids. SAM-MTP labels '
            f'need depth: export the frames from the .sens files with tools/export_scannet_frames.py')
    return records


def read_scene_list(path: str) -> List[str]:
    """Scene names from a split file (one per line, e.g. ScanNet's ``scannetv2_train.txt``)."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def list_frames(frames_root: str, scenes: Optional[Sequence[str]] = None, frame_stride: int = 25) -> List[FrameRecord]:
    """All frames of the given scenes (default: every scene folder under ``frames_root``), sorted."""
    if not os.path.isdir(frames_root):
        raise FileNotFoundError(f'{frames_root}: frames root does not exist')
    if scenes is None:
        scenes = sorted(d for d in os.listdir(frames_root)
                        if os.path.isdir(os.path.join(frames_root, d)) and not d.startswith('.'))
    missing = [s for s in scenes if not os.path.isdir(os.path.join(frames_root, s))]
    if missing:
        raise FileNotFoundError(f'{frames_root}: {len(missing)} scene folder(s) of the split are missing, '
                                f'e.g. {missing[:5]} (export them first)')
    records = []
    for scene in sorted(scenes):
        records.extend(list_scene_frames(os.path.join(frames_root, scene), frame_stride, scene))
    return records


def read_export_marker(scene_dir: str) -> Optional[dict]:
    """The JSON summary ``tools/export_scannet_frames.py`` writes last into a scene folder (``.export_done``), or
    None when the folder has none (frames from another exporter)."""
    path = os.path.join(scene_dir, EXPORT_DONE_MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            marker = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: cannot read the export marker ({err}); delete the scene folder and export it '
                         f'again') from err
    if not isinstance(marker, dict):
        raise ValueError(f'{path}: export marker is not a JSON object; delete the scene folder and export it again')
    return marker


def check_depth_scale(records: Sequence[FrameRecord], depth_scale: float) -> None:
    """Refuse ``depth_scale`` (raw depth units per metre) when a scene's export marker records another
    ``depth_shift`` for its recording: every point would be scaled wrongly. Scenes without a marker (other
    exporters, synthetic data) are not checked. Reads one small file per scene."""
    for scene_dir in sorted({r.scene_dir for r in records}):
        marker = read_export_marker(scene_dir)
        shift = None if marker is None else marker.get('depth_shift')
        if shift is None:
            continue
        if not math.isclose(float(shift), float(depth_scale), rel_tol=1e-6):
            raise ValueError(
                f'{os.path.join(scene_dir, EXPORT_DONE_MARKER)}: the recording stores depth in units of 1/{shift:g} '
                f'm (depth_shift {shift:g}) but label_cfg.depth_scale is {depth_scale:g}; set '
                f'label_cfg.depth_scale={shift:g} (e.g. --cfg-options label_cfg.depth_scale={shift:g})')


_camera_cache: Dict[str, SceneCameras] = {}


def load_scene_cameras(scene_dir: str, layout: str) -> SceneCameras:
    """Calibration of a scene (cached per folder)."""
    cached = _camera_cache.get(scene_dir)
    if cached is not None:
        return cached
    eye = np.eye(4)
    if layout == 'export':
        ext_c, ext_d = (export_calibration_path(scene_dir, f'extrinsic_{c}') for c in ('color', 'depth'))
        cams = SceneCameras(
            intrinsic_color=read_intrinsic(export_calibration_path(scene_dir, 'intrinsic_color')),
            intrinsic_depth=read_intrinsic(export_calibration_path(scene_dir, 'intrinsic_depth')),
            extrinsic_color=read_extrinsic(ext_c) if os.path.isfile(ext_c) else eye,
            extrinsic_depth=read_extrinsic(ext_d) if os.path.isfile(ext_d) else eye)
    else:
        cams = SceneCameras(read_intrinsic(os.path.join(scene_dir, 'intrinsic.txt')), None, eye, eye)
    for name in ('extrinsic_color', 'extrinsic_depth'):
        if not np.isfinite(getattr(cams, name)).all():
            raise ValueError(f'{scene_dir}: {name} contains NaN or inf')
    _camera_cache[scene_dir] = cams
    return cams


def scale_intrinsic(intrinsic: np.ndarray, from_hw, to_hw) -> np.ndarray:
    """Intrinsics of the same camera after resizing the image from ``from_hw`` to ``to_hw`` (H, W).

    Uses the pixel-centre convention (pixel ``i`` covers [i - 0.5, i + 0.5]): ``c' = (c + 0.5) * s - 0.5``.
    """
    sy, sx = to_hw[0] / from_hw[0], to_hw[1] / from_hw[1]
    out = np.array(intrinsic[:3, :3], dtype=np.float64)
    out[0, 0] *= sx
    out[0, 1] *= sx
    out[0, 2] = (out[0, 2] + 0.5) * sx - 0.5
    out[1, 1] *= sy
    out[1, 2] = (out[1, 2] + 0.5) * sy - 0.5
    return out


def read_pose(path: str) -> np.ndarray:
    """4x4 camera-to-world pose; FrameError 'missing_pose' / 'invalid_pose' (inf or NaN, as ScanNet writes
    for frames where tracking failed)."""
    if not os.path.isfile(path):
        raise FrameError('missing_pose', path, 'pose file does not exist')
    try:
        pose = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise FrameError('missing_pose', path, f'pose file is not a 4x4 text matrix ({err})') from err
    if pose.shape != (4, 4):
        raise FrameError('missing_pose', path, f'pose must be a 4x4 matrix, got shape {pose.shape}')
    if not np.isfinite(pose).all():
        raise FrameError('invalid_pose', path, 'pose contains inf or NaN (tracking lost)')
    return pose


def read_color(path: str) -> np.ndarray:
    """RGB uint8 image; FrameError 'missing_file' / 'corrupt_image'."""
    import cv2
    if not os.path.isfile(path):
        raise FrameError('missing_file', path, 'colour image does not exist')
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FrameError('corrupt_image', path, 'colour image cannot be decoded (corrupt or truncated file)')
    return np.ascontiguousarray(bgr[..., ::-1])


def read_depth(path: str, depth_scale: float) -> np.ndarray:
    """Depth in metres as float32 from a 16-bit PNG in raw units (``depth_scale`` units per metre)."""
    import cv2
    if not os.path.isfile(path):
        raise FrameError('missing_file', path, 'depth image does not exist')
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FrameError('corrupt_image', path, 'depth image cannot be decoded (corrupt or truncated file)')
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise FrameError('corrupt_image', path, f'depth must be a single-channel 16-bit PNG, got {raw.dtype} '
                         f'with shape {raw.shape}')
    return raw.astype(np.float32) / np.float32(depth_scale)


def load_frame(record: FrameRecord, depth_scale: float = 1000.0) -> FrameData:
    """Read pose (first: frames without a pose are skipped cheaply), colour, depth and calibration."""
    pose = read_pose(record.pose_path)
    color = read_color(record.color_path)
    depth = read_depth(record.depth_path, depth_scale)
    if not (depth > 0).any():
        raise FrameError('invalid_depth', record.depth_path, 'depth image has no valid (non-zero) pixel')
    cams = load_scene_cameras(record.scene_dir, record.layout)
    k_depth = cams.intrinsic_depth
    if k_depth is None:
        k_depth = scale_intrinsic(cams.intrinsic_color, color.shape[:2], depth.shape)
    return FrameData(record, color, depth, pose, cams.intrinsic_color, k_depth, cams.extrinsic_color,
                     cams.extrinsic_depth)


# ---------------------------------------------------------------------------------------------------- writing
def matrix_text(matrix: np.ndarray, number_format: str = '.9g') -> bytes:
    """A matrix as text, one row a line (``-inf`` rows of lost-tracking poses stay ``-inf``)."""
    return ''.join(' '.join(format(v, number_format) for v in row) + '\n'
                   for row in np.asarray(matrix, np.float64)).encode()


def encode_image(path: str, image: np.ndarray, params: Sequence[int] = ()) -> bytes:
    """``image`` encoded as ``path``'s extension says (BGR or single-channel, as OpenCV takes it)."""
    import cv2
    ok, buf = cv2.imencode(os.path.splitext(path)[1], image, list(params))
    if not ok:
        raise ValueError(f'{path}: OpenCV could not encode the image')
    return buf.tobytes()


class FrameExportWriter:
    """Writes one scene folder in the export layout (module docstring): its calibration, then colour, depth and
    pose per frame. ``tools/export_scannet_frames.py`` (``sens.py``) and the synthetic generator write with it.

    Args:
        scene_dir: the scene folder.
        write_bytes: how a file is written (default atomic, so a kill never leaves half a file).
        number_format: format spec of the matrix entries (``'f'``: six decimals, as ScanNet's exporter writes).
        jpeg_quality: of colour frames given as images (95: OpenCV's default).
    """

    def __init__(self, scene_dir: str, write_bytes: Callable[[str, bytes], None] = atomic_write_bytes,
                 number_format: str = '.9g', jpeg_quality: int = 95):
        self.scene_dir, self.write_bytes = scene_dir, write_bytes
        self.number_format, self.jpeg_quality = number_format, jpeg_quality
        for sub in ('color', 'depth', 'pose', 'intrinsic'):
            os.makedirs(os.path.join(scene_dir, sub), exist_ok=True)

    def write_calibration(self, intrinsic_color: np.ndarray, intrinsic_depth: np.ndarray,
                          extrinsic_color: Optional[np.ndarray] = None,
                          extrinsic_depth: Optional[np.ndarray] = None) -> None:
        """The four calibration files; a missing extrinsic is the identity (registered cameras)."""
        eye = np.eye(4)
        calibration = dict(intrinsic_color=intrinsic_color, extrinsic_color=eye if extrinsic_color is None
                           else extrinsic_color, intrinsic_depth=intrinsic_depth,
                           extrinsic_depth=eye if extrinsic_depth is None else extrinsic_depth)
        for name, matrix in calibration.items():
            self.write_bytes(export_calibration_path(self.scene_dir, name), matrix_text(matrix, self.number_format))

    def write_frame(self, frame_id: int, color: Union[bytes, np.ndarray], depth: Union[bytes, np.ndarray],
                    pose: np.ndarray) -> None:
        """One frame: ``color`` as JPEG bytes or an RGB uint8 image, ``depth`` as PNG bytes or a uint16 image in
        raw units, ``pose`` the 4x4 camera-to-world matrix (pose last: a frame without it is not listed whole)."""
        color_path, depth_path, pose_path = export_frame_paths(self.scene_dir, frame_id)
        if not isinstance(color, bytes):
            import cv2
            color = encode_image(color_path, np.ascontiguousarray(color[..., ::-1]),
                                 [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not isinstance(depth, bytes):
            depth = encode_image(depth_path, depth)
        self.write_bytes(color_path, color)
        self.write_bytes(depth_path, depth)
        self.write_bytes(pose_path, matrix_text(pose, self.number_format))
