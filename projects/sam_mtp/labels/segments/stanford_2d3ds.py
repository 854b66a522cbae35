"""Stanford 2D-3D-S posed images for S3DIS rooms: reading the frames and registering the room to them.

**Layout read** (the 2D-3D-S release, ``area_5a`` and ``area_5b`` both feed S3DIS ``Area_5``)::

    <images_root>/area_<N>[a|b]/data/rgb/camera_<uuid>_<room>_frame_<j>_domain_rgb.png      1080x1080 RGB
                                     depth/camera_<uuid>_<room>_frame_<j>_domain_depth.png  uint16, 1/512 m,
                                                                                           65535 = missing
                                     pose/camera_<uuid>_<room>_frame_<j>_domain_pose.json   camera_k_matrix (3x3),
                                                        camera_rt_matrix (3x4 area -> camera [R | t], camera
                                                        axes x right, y down, z forward)

``<room>`` (e.g. ``office_2``) and the area give the S3DIS sample ``Area_<N>_<room>``. Depth is z-depth.

**Frames of reference.** The poses live in the area's frame. mmdet3d's S3DIS points are the *Aligned Version*
of the room (rotated about z by the room's alignment angle) shifted so that their minimum is 0
(``data/s3dis/indoor3d_util.py``). Neither the angle nor the shift is in mmdet3d's files, so the room is
registered to its frames: the frames' depth is back-projected into the area frame; for each candidate angle
about z the room is placed by the peak of the cross-correlation of the two floor-plan occupancy grids of the
walls and by the floor height; the two placements most consistent with the frames are refined by point-to-point
ICP restricted to a z-rotation and a translation. The candidate with the best *fitness* wins: the depth
consistency of the placed room with ``check_views`` of its frames (of the room points seen on a valid depth pixel
and not occluded, the fraction within ``fit_tolerance`` of the measured depth); a fitness below ``min_fitness`` is
an error naming the room. The transform and its fitness go into the segment file's metadata. A known transform
can be given instead (``<transforms_dir>/<sample>.txt``, 4x4, points -> area).
"""
import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..geometry import backproject_depth, transform_points

TWOD3DS_DEPTH_SCALE = 512.0   # depth units per metre
TWOD3DS_MISSING_DEPTH = 65535
_RGB_NAME = re.compile(r'^camera_(?P<uuid>[0-9A-Za-z]+)_(?P<room>.+)_frame_(?P<frame>\d+)_domain_rgb\.png$')
_AREA_DIR = re.compile(r'^area_(?P<num>\d+)[a-z]?$')

DEFAULT_REGISTRATION_CFG = dict(angles=(0., 90., 180., 270.), grid=0.05, frame_points=120000, check_views=12,
                                max_points=20000, icp_iterations=25, fit_tolerance=0.05, min_fitness=0.8, seed=0)


class RegistrationError(ValueError):
    """A room could not be registered to its frames; the message names the room and the best fitness."""


@dataclass(frozen=True)
class TwoD3DSFrame:
    """The files of one 2D-3D-S image."""
    sample: str
    frame_id: int
    rgb_path: str
    depth_path: str
    pose_path: str


def list_2d3ds_frames(images_root: str) -> Dict[str, List[TwoD3DSFrame]]:
    """S3DIS sample name (``Area_1_office_2``) -> its 2D-3D-S frames, sorted by file name."""
    if not os.path.isdir(images_root):
        raise FileNotFoundError(f'{images_root}: Stanford 2D-3D-S root does not exist')
    rooms: Dict[str, List[TwoD3DSFrame]] = {}
    areas = [d for d in sorted(os.listdir(images_root)) if _AREA_DIR.match(d)]
    if not areas:
        raise FileNotFoundError(f'{images_root}: no area_<N> folder (expected the 2D-3D-S layout, see '
                                'docs/finetune.md)')
    for area in areas:
        data = os.path.join(images_root, area, 'data')
        rgb_dir = os.path.join(data, 'rgb')
        if not os.path.isdir(rgb_dir):
            continue
        area_name = f'Area_{int(_AREA_DIR.match(area).group("num"))}'
        for name in sorted(os.listdir(rgb_dir)):
            m = _RGB_NAME.match(name)
            if not m:
                continue
            base = name[:-len('rgb.png')]
            sample = f'{area_name}_{m.group("room")}'
            rooms.setdefault(sample, []).append(TwoD3DSFrame(
                sample, int(m.group('frame')), os.path.join(rgb_dir, name),
                os.path.join(data, 'depth', base + 'depth.png'), os.path.join(data, 'pose', base + 'pose.json')))
    return rooms


def read_2d3ds_pose(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(K 3x3, camera-to-area 4x4) of a 2D-3D-S pose file; ValueError naming the file when malformed."""
    try:
        with open(path) as f:
            pose = json.load(f)
        k = np.asarray(pose['camera_k_matrix'], np.float64)
        rt = np.asarray(pose['camera_rt_matrix'], np.float64)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f'{path}: not a 2D-3D-S pose file ({type(err).__name__}: {err})') from err
    if k.shape != (3, 3) or rt.shape not in ((3, 4), (4, 4)) or not (np.isfinite(k).all() and np.isfinite(rt).all()):
        raise ValueError(f'{path}: camera_k_matrix must be 3x3 and camera_rt_matrix 3x4, finite; got {k.shape}, '
                         f'{rt.shape}')
    rot = rt[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f'{path}: camera_rt_matrix has no rotation block or camera_k_matrix no positive focal '
                         'lengths (singular calibration)')
    world_to_cam = np.eye(4)
    world_to_cam[:3] = rt[:3]
    return k, np.linalg.inv(world_to_cam)


def read_2d3ds_depth(path: str) -> np.ndarray:
    """Depth in metres (0 = missing) of a 2D-3D-S depth PNG."""
    import cv2

    from ..formats.frames import FrameError
    if not os.path.isfile(path):
        raise FrameError('missing_file', path, 'depth image does not exist')
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
        raise FrameError('corrupt_image', path, 'depth must be a single-channel 16-bit PNG')
    depth = raw.astype(np.float32) / np.float32(TWOD3DS_DEPTH_SCALE)
    depth[raw == TWOD3DS_MISSING_DEPTH] = 0
    return depth


def frame_stride_for(depth_shape, num_frames: int, frame_points: int) -> int:
    """Pixel stride that gives about ``frame_points`` depth samples over ``num_frames`` frames."""
    per_frame = max(frame_points // max(num_frames, 1), 1)
    return max(1, int(np.sqrt(depth_shape[0] * depth_shape[1] / per_frame)))


def frames_cloud(depths_poses: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]], pixel_stride: int) -> np.ndarray:
    """Area-frame points of every ``pixel_stride``-th depth pixel of the frames ``(depth, K, cam-to-area)``."""
    clouds = []
    for depth, k, cam_to_world in depths_poses:
        sub = depth[::pixel_stride, ::pixel_stride]
        k_sub = k.copy()
        k_sub[:2] /= pixel_stride  # pixel i of the sub-image is pixel i * stride of the image
        _, _, xyz = backproject_depth(sub, k_sub)
        clouds.append(transform_points(xyz, cam_to_world))
    return np.concatenate(clouds) if clouds else np.zeros((0, 3), np.float32)


def depth_consistency(points: np.ndarray, views: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
                      tolerance: float) -> float:
    """How well points agree with depth images ``(depth, K, cam-to-area)``: among the points that land on a valid
    depth pixel and are not hidden behind it, the fraction within ``tolerance`` of the measured depth. A point
    more than ``tolerance`` *in front of* the measured surface would have been seen, so it contradicts the
    frame; a point behind it is merely occluded and not counted. Independent of the point densities."""
    from ..geometry import project_points
    consistent = contradicted = 0
    for depth, k, cam_to_world in views:
        cam = transform_points(np.asarray(points, np.float32), np.linalg.inv(cam_to_world))
        row, col, inside = project_points(cam, k, depth.shape)
        measured = depth[row, col]
        dz = cam[:, 2] - measured
        ok = inside & (measured > 0)
        consistent += int((ok & (np.abs(dz) < tolerance)).sum())
        contradicted += int((ok & (dz <= -tolerance)).sum())
    return consistent / max(consistent + contradicted, 1)


def _rot_z(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, -s, 0.], [s, c, 0.], [0., 0., 1.]])


def _occupancy(xy: np.ndarray, lo: np.ndarray, shape, grid: float) -> np.ndarray:
    idx = np.floor((xy - lo) / grid).astype(np.int64)
    occ = np.zeros(shape, np.float64)
    occ[idx[:, 0], idx[:, 1]] = 1.0
    return occ


def _walls(xyz: np.ndarray, height: float = 0.5) -> np.ndarray:
    """Points more than ``height`` above the floor (1st height percentile): walls and tall furniture, whose
    floor-plan outline is sharp where the floor's filled rectangle is not."""
    return xyz[xyz[:, 2] > np.percentile(xyz[:, 2], 1) + height]


def _initial_translation(room: np.ndarray, frames: np.ndarray, grid: float) -> np.ndarray:
    """Translation placing ``room`` on ``frames``: peak of the cross-correlation of the two floor-plan occupancy
    grids of their walls in x, y, and the floor heights (1st height percentiles) in z."""
    from scipy.signal import fftconvolve
    room_w, frames_w = _walls(room), _walls(frames)
    if len(room_w) < 10 or len(frames_w) < 10:
        room_w, frames_w = room, frames
    lo_f, lo_r = frames_w[:, :2].min(0), room_w[:, :2].min(0)
    shape_f = tuple(np.floor((frames_w[:, :2].max(0) - lo_f) / grid).astype(int) + 1)
    shape_r = tuple(np.floor((room_w[:, :2].max(0) - lo_r) / grid).astype(int) + 1)
    occ_f = _occupancy(frames_w[:, :2], lo_f, shape_f, grid)
    occ_r = _occupancy(room_w[:, :2], lo_r, shape_r, grid)
    corr = fftconvolve(occ_f, occ_r[::-1, ::-1], mode='full')
    peak = np.array(np.unravel_index(np.argmax(corr), corr.shape))
    shift = peak - (np.array(shape_r) - 1)  # room cell x lands on frame cell x + shift
    t_xy = shift * grid + lo_f - lo_r
    t_z = np.percentile(frames[:, 2], 1) - np.percentile(room[:, 2], 1)
    return np.array([t_xy[0], t_xy[1], t_z])


def _icp_z_rotation(room: np.ndarray, tree, frames: np.ndarray, transform: np.ndarray, iterations: int,
                    tolerance: float) -> np.ndarray:
    """Refine a 4x4 (rotation about z + translation) by point-to-point ICP with an inlier radius shrinking from
    ``10 * tolerance`` to ``tolerance``."""
    for i in range(iterations):
        radius = tolerance * (1.0 + 9.0 * max(0.0, 1.0 - i / max(iterations // 2, 1)))
        moved = room @ transform[:3, :3].T + transform[:3, 3]
        dist, idx = tree.query(moved, distance_upper_bound=radius, workers=-1)
        inlier = np.isfinite(dist)
        if inlier.sum() < 10:
            break
        src, dst = moved[inlier], frames[idx[inlier]]
        sc, dc = src[:, :2].mean(0), dst[:, :2].mean(0)
        cov = (src[:, :2] - sc).T @ (dst[:, :2] - dc)
        angle = np.arctan2(cov[0, 1] - cov[1, 0], cov[0, 0] + cov[1, 1])
        step = np.eye(4)
        step[:3, :3] = _rot_z(np.rad2deg(angle))
        step[:2, 3] = dc - step[:2, :2] @ sc
        step[2, 3] = (dst[:, 2] - src[:, 2]).mean()
        transform = step @ transform
        if radius == tolerance and abs(angle) < 1e-6 and np.abs(step[:3, 3]).max() < 1e-5:
            break  # converged
    return transform


def register_room(room_xyz: np.ndarray, frame_xyz: np.ndarray, views, where: str,
                  angles: Sequence[float] = (0., 90., 180., 270.), grid: float = 0.05, max_points: int = 60000,
                  icp_iterations: int = 25, fit_tolerance: float = 0.05, min_fitness: float = 0.8, seed: int = 0,
                  **_) -> Tuple[np.ndarray, dict]:
    """4x4 transform mapping the room's points onto its frames' area frame, and how well it fits.

    ``frame_xyz`` are the frames' depth points in the area frame (placement and ICP); ``views`` a few frames
    ``(depth, K, cam-to-area)`` (``check_views`` of the config) that score each candidate by
    :func:`depth_consistency` (the fitness).
    Raises :class:`RegistrationError` naming ``where`` when the best fitness is below ``min_fitness``.
    """
    from scipy.spatial import cKDTree
    rng = np.random.default_rng(seed)
    room = np.asarray(room_xyz, np.float64)[:, :3]
    frames = np.asarray(frame_xyz, np.float64)[:, :3]
    if len(frames) < 100 or len(room) < 100:
        raise RegistrationError(f'{where}: too few points to register the room ({len(room)} room points, '
                                f'{len(frames)} valid depth samples in its frames)')
    if len(room) > max_points:
        room = room[rng.choice(len(room), max_points, replace=False)]
    if len(frames) > 4 * max_points:
        frames = frames[rng.choice(len(frames), 4 * max_points, replace=False)]
    tree = cKDTree(frames)
    tried = []  # (fitness, angle, transform): every candidate placed, the two most consistent refined by ICP
    for angle in angles:
        rot = np.eye(4)
        rot[:3, :3] = _rot_z(angle)
        rot[:3, 3] = _initial_translation(room @ rot[:3, :3].T, frames, grid)
        tried.append([depth_consistency(room @ rot[:3, :3].T + rot[:3, 3], views, fit_tolerance), float(angle), rot])
    tried.sort(key=lambda t: -t[0])
    for candidate in tried[:2]:
        candidate[2] = _icp_z_rotation(room, tree, frames, candidate[2], icp_iterations, fit_tolerance)
        candidate[0] = depth_consistency(room @ candidate[2][:3, :3].T + candidate[2][:3, 3], views, fit_tolerance)
    fitness, angle, transform = max(tried, key=lambda t: t[0])
    info = dict(fitness=round(fitness, 4), initial_angle_deg=angle,
                yaw_deg=round(float(np.rad2deg(np.arctan2(transform[1, 0], transform[0, 0]))), 4),
                transform=np.round(transform, 6).tolist(),
                candidates={f'{a:g}': round(f, 4) for f, a, _ in tried})
    if fitness < min_fitness:
        raise RegistrationError(f'{where}: cannot register the room to its 2D-3D-S frames: best fitness '
                                f'{fitness:.3f} (angle {angle:g} deg) < min_fitness {min_fitness}; give the '
                                'transform in <transforms_dir>/<sample>.txt')
    return transform, info


def read_transform(path: str) -> np.ndarray:
    """A 4x4 text matrix (points -> area frame)."""
    try:
        mat = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: cannot read the 4x4 room transform ({err})') from err
    if mat.shape != (4, 4) or not np.isfinite(mat).all():
        raise ValueError(f'{path}: the room transform must be a finite 4x4 matrix, got shape {mat.shape}')
    return mat


def transform_of(transforms_dir: Optional[str], sample: str) -> Optional[np.ndarray]:
    """The user-given transform of ``sample`` or None."""
    if transforms_dir is None:
        return None
    path = os.path.join(transforms_dir, f'{sample}.txt')
    return read_transform(path) if os.path.isfile(path) else None
