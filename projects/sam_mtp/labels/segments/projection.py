"""Scene segments from one image per sample: every point takes the SAM region under its projection.

Used for SUN RGB-D (mmdet3d's ``images.CAM0`` entry: ``img_path``, ``height``, ``width``, ``depth2img``) and
for custom data whose info gives one image and a projection per sample.

**SUN RGB-D calibration.** mmdet3d's converter (``tools/dataset_converters/sunrgbd_data_utils.py`` and
``update_infos_to_v2.py``) stores ``depth2img = K @ F @ Rtilt.T`` with ``F = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]``:
points are in the upright depth frame (x right, y forward, z up; SUN RGB-D toolbox ``read3dPoints`` applies
``Rtilt`` to ``[x, z, -y]`` of the camera), ``Rtilt.T`` undoes the tilt, ``F`` turns depth axes into camera
axes (x right, y down, z forward) and ``K`` is the toolbox's intrinsic matrix. ``K``'s principal point is in
MATLAB's **1-based** pixel coordinates (the toolbox back-projects pixel ``(x, y)`` of ``meshgrid(1:W, 1:H)``),
so the 0-based pixel of a point is ``depth2img @ p / z - 1``, as mmdet3d's own ImVoteNet fusion does
(``uv_origin = (uvz[..., :2] - 1).round()``). Two forms of ``depth2img`` occur in mmdet3d-format data:

* ``K @ R`` (the current converter; its third row is a unit vector), used as it is;
* ``K.T @ R``: infos first written by mmdet3d's v0.x converter, which stored ``calib['K']`` transposed, and then
  upgraded with ``update_infos_to_v2.py`` (mmdet3d's own ``tests/data/sunrgbd`` fixture has this form). The
  rows are then ``fx R0``, ``fy R1`` and ``cx R0 + cy R1 + R2``, which this module factorises back into
  ``K @ R`` (with a warning naming the sample) instead of projecting every point off the image.

Anything else (NaN, a singular or mirrored matrix, rows that fit neither form) is a :class:`CalibrationError`
naming the sample.
"""
from typing import Optional, Tuple

import numpy as np

from ..formats.scene_segments import compact_segments

# mmdet3d's depth -> camera axis change (update_infos_to_v2.py, "follow Coord3DMode.convert_point").
DEPTH_TO_CAMERA_AXES = np.array([[1., 0., 0.], [0., 0., -1.], [0., 1., 0.]])
_TOL = 1e-3  # relative tolerance of the unit-row and orthogonality checks (calibrations are stored in float32)


class CalibrationError(ValueError):
    """A sample's projection matrix is unusable; the message names the sample."""


def _check_matrix(matrix, shape_ok, where: str, what: str) -> np.ndarray:
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise CalibrationError(f'{where}: {what} is not a numeric matrix ({err})') from err
    if m.shape not in shape_ok:
        raise CalibrationError(f'{where}: {what} must have shape {" or ".join(map(str, shape_ok))}, got {m.shape}')
    if not np.isfinite(m).all():
        raise CalibrationError(f'{where}: {what} contains NaN or inf')
    return m


def sunrgbd_projection(depth2img, where: str) -> Tuple[np.ndarray, str]:
    """3x4 projection ``[K @ R | 0]`` from a SUN RGB-D ``depth2img`` and the form it was stored in
    (``'K@R'`` or ``'K.T@R'``, see the module docstring)."""
    m = _check_matrix(depth2img, ((3, 3), ), where, 'depth2img')
    scale = np.abs(m).max()
    det = np.linalg.det(m)
    if scale == 0 or abs(det) <= 1e-9 * scale**3:
        raise CalibrationError(f'{where}: depth2img {m.round(4).tolist()} is singular (det {det:.3g})')
    if det < 0:
        raise CalibrationError(f'{where}: depth2img {m.round(4).tolist()} has a negative determinant (a mirrored '
                               'camera); expected K @ R with a rotation R')
    r0, r1, r2 = m
    if abs(np.linalg.norm(r2) - 1) < _TOL:
        return np.concatenate([m, np.zeros((3, 1))], 1), 'K@R'
    fx, fy = np.linalg.norm(r0), np.linalg.norm(r1)
    rot0, rot1 = r0 / fx, r1 / fy
    cx, cy = r2 @ rot0, r2 @ rot1
    rot2 = r2 - cx * rot0 - cy * rot1
    rot = np.stack([rot0, rot1, rot2])
    if abs(rot0 @ rot1) < _TOL and abs(np.linalg.norm(rot2) - 1) < _TOL and np.linalg.det(rot) > 0:
        k = np.array([[fx, 0., cx], [0., fy, cy], [0., 0., 1.]])
        return np.concatenate([k @ rot, np.zeros((3, 1))], 1), 'K.T@R'
    raise CalibrationError(f'{where}: depth2img {m.round(4).tolist()} is neither K @ R (unit third row) nor the '
                           'K.T @ R form of mmdet3d v0.x infos; regenerate the info with mmdet3d\'s converter')


def camera_projection(cam2img, lidar2cam, where: str) -> np.ndarray:
    """3x4 projection ``K @ [R | t]`` from mmdet3d's ``cam2img`` (3x3 or 4x4 intrinsics, 0-based pixel
    centres) and ``lidar2cam`` (4x4, point frame -> camera x right, y down, z forward)."""
    k = _check_matrix(cam2img, ((3, 3), (4, 4)), where, 'cam2img')[:3, :3]
    ext = _check_matrix(lidar2cam, ((4, 4), ), where, 'lidar2cam')
    if k[0, 0] <= 0 or k[1, 1] <= 0 or abs(np.linalg.det(ext[:3, :3])) < 1e-6:
        raise CalibrationError(f'{where}: singular calibration (cam2img focal lengths {k[0, 0]}, {k[1, 1]}; '
                               f'det of the lidar2cam rotation {np.linalg.det(ext[:3, :3]):.3g})')
    return k @ ext[:3]


def lidar_projection(lidar2img, where: str) -> np.ndarray:
    """3x4 projection from mmdet3d's ``lidar2img`` (3x4 or 4x4, point frame -> pixels)."""
    m = _check_matrix(lidar2img, ((3, 4), (4, 4)), where, 'lidar2img')[:3]
    if abs(np.linalg.det(m[:, :3])) <= 1e-9 * np.abs(m[:, :3]).max(initial=0)**3:
        raise CalibrationError(f'{where}: lidar2img {m.round(4).tolist()} is singular')
    return m


def project_to_image(points: np.ndarray, projection: np.ndarray, image_hw, pixel_origin: int = 0):
    """Continuous 0-based pixel coordinates ``(u, v)`` (column, row; pixel ``i`` spans ``[i - 0.5, i + 0.5]``)
    of (N, 3) points under a 3x4 ``projection``, their pixel ``(row, col)`` and whether that pixel is inside an
    ``image_hw`` image in front of the camera. ``pixel_origin`` is the coordinate of the first pixel in the
    projection's convention (1 for SUN RGB-D's MATLAB calibration, 0 otherwise). Rows/cols of points outside
    are clipped into range (use ``inside``)."""
    p = np.asarray(projection, np.float64)
    uvw = np.asarray(points, np.float64)[:, :3] @ p[:, :3].T + p[:, 3]
    w = uvw[:, 2]
    front = w > 1e-9
    safe_w = np.where(front, w, 1.0)
    u = uvw[:, 0] / safe_w - pixel_origin
    v = uvw[:, 1] / safe_w - pixel_origin
    col, row = np.rint(u), np.rint(v)
    h, wd = image_hw
    inside = front & (col >= 0) & (col < wd) & (row >= 0) & (row < h)
    return u, v, np.clip(row, 0, h - 1).astype(np.int64), np.clip(col, 0, wd - 1).astype(np.int64), inside


def single_image_segments(points: np.ndarray, region_map: np.ndarray, projection: np.ndarray, image_hw,
                          pixel_origin: int = 0, min_segment_points: int = 1,
                          image_points: Optional[tuple] = None) -> np.ndarray:
    """Segment id (int64, -1 = none) of every point: the region of ``region_map`` (1..R, 0 = none; the image
    resized to any size) under the point's projection into the ``image_hw`` image. Points behind the camera,
    outside the image or on no mask get -1. ``image_points`` reuses a :func:`project_to_image` result."""
    u, v, row, col, inside = image_points or project_to_image(points, projection, image_hw, pixel_origin)
    mh, mw = region_map.shape
    h, w = image_hw
    if (mh, mw) != (h, w):  # pixel-centre convention, as labels/formats/frames.py: scale_intrinsic
        row = np.clip(np.rint((v + 0.5) * mh / h - 0.5), 0, mh - 1).astype(np.int64)
        col = np.clip(np.rint((u + 0.5) * mw / w - 0.5), 0, mw - 1).astype(np.int64)
    region = np.where(inside, region_map[row, col], 0).astype(np.int64)
    return compact_segments(region - 1, min_segment_points)
