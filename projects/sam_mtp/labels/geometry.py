"""Depth back-projection and depth-to-colour pixel pairing for one frame (vectorised numpy).

Conventions:
- intrinsics are 3x3 pinhole matrices in the pixel-centre convention: pixel (row ``v``, col ``u``) is the point
  ``u = fx * x / z + cx``, ``v = fy * y / z + cy``; a projected point belongs to pixel ``(rint(v), rint(u))``;
- ``extrinsic_*`` maps a camera's coordinates into the rig frame; ``pose`` maps the rig frame into the world
  (ScanNet: both extrinsics are identity and ``pose`` is the depth camera's camera-to-world);
- world points are then multiplied by the scene's axis-align matrix when one is given.

A point is kept only if its depth pixel is valid (depth > 0 and finite, optionally below ``max_depth``) and it
projects inside the colour image; it then has a colour and a mask pixel by construction.
"""
from typing import Dict, Optional, Tuple

import numpy as np

from .formats.frames import FrameData, FrameError, scale_intrinsic


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid/affine transform to (N, 3) points (float32 out)."""
    m = np.asarray(matrix, np.float64)
    return (points @ m[:3, :3].T.astype(np.float32) + m[:3, 3].astype(np.float32)).astype(np.float32, copy=False)


def backproject_depth(depth: np.ndarray, intrinsic: np.ndarray, max_depth: Optional[float] = None
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame points of all valid depth pixels.

    Returns (rows, cols, xyz) with xyz float32 of shape (P, 3) in the depth camera's frame.
    """
    valid = np.isfinite(depth) & (depth > 0)
    if max_depth is not None:
        valid &= depth < max_depth
    rows, cols = np.nonzero(valid)
    z = depth[rows, cols].astype(np.float32)
    fx, fy, cx, cy, skew = (np.float32(v) for v in (intrinsic[0, 0], intrinsic[1, 1], intrinsic[0, 2],
                                                    intrinsic[1, 2], intrinsic[0, 1]))
    y = (rows.astype(np.float32) - cy) / fy * z
    x = ((cols.astype(np.float32) - cx) * z - skew * y) / fx
    return rows, cols, np.stack([x, y, z], axis=1)


def project_points(xyz: np.ndarray, intrinsic: np.ndarray, image_hw) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel (row, col) of camera-frame points and whether they land inside an ``image_hw`` image in front of
    the camera. Rows/cols of points outside are clipped into range (use ``inside``)."""
    z = xyz[:, 2]
    front = z > 1e-6
    safe_z = np.where(front, z, np.float32(1.0))
    u = (intrinsic[0, 0] * xyz[:, 0] + intrinsic[0, 1] * xyz[:, 1]) / safe_z + intrinsic[0, 2]
    v = intrinsic[1, 1] * xyz[:, 1] / safe_z + intrinsic[1, 2]
    col = np.rint(u)
    row = np.rint(v)
    h, w = image_hw
    inside = front & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    col = np.clip(col, 0, w - 1).astype(np.int64)
    row = np.clip(row, 0, h - 1).astype(np.int64)
    return row, col, inside


def frame_seed(seed: int, scene: str, frame_id: int) -> np.random.Generator:
    """Random generator of one frame: the same frame gets the same samples whatever shard or order runs it."""
    import zlib
    return np.random.default_rng([int(seed), zlib.crc32(scene.encode()), int(frame_id)])


def _axis_lookup(size: int, focal_from: float, centre_from: float, focal_to: float, centre_to: float,
                 size_to: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel index in the target image of every pixel index along one axis of the source image, for two
    cameras with the same centre and orientation (the depth is then irrelevant), and whether it is inside."""
    target = np.rint(focal_to * (np.arange(size, dtype=np.float64) - centre_from) / focal_from + centre_to)
    inside = (target >= 0) & (target < size_to)
    return np.clip(target, 0, size_to - 1).astype(np.int64), inside


def _valid_depth(depth: np.ndarray, max_depth: Optional[float]) -> np.ndarray:
    valid = np.isfinite(depth) & (depth > 0)
    if max_depth is not None:
        valid &= depth < max_depth
    return valid


def pair_pixels_registered(frame: FrameData, mask_hw, max_depth: Optional[float] = None):
    """Fast path of :func:`pair_pixels` for registered cameras (identity depth-to-colour transform, no skew,
    as in ScanNet): a depth pixel's colour pixel depends only on its row and column, so the pairing is two
    lookup tables and nothing is computed per pixel but the validity test."""
    kd, kc = frame.intrinsic_depth, frame.intrinsic_color
    color_hw = frame.color.shape[:2]
    km = scale_intrinsic(kc, color_hw, mask_hw)
    dh, dw = frame.depth.shape
    mrow_of, row_ok = _axis_lookup(dh, kd[1, 1], kd[1, 2], km[1, 1], km[1, 2], mask_hw[0])
    mcol_of, col_ok = _axis_lookup(dw, kd[0, 0], kd[0, 2], km[0, 0], km[0, 2], mask_hw[1])
    crow_of, crow_ok = _axis_lookup(dh, kd[1, 1], kd[1, 2], kc[1, 1], kc[1, 2], color_hw[0])
    ccol_of, ccol_ok = _axis_lookup(dw, kd[0, 0], kd[0, 2], kc[0, 0], kc[0, 2], color_hw[1])
    usable = _valid_depth(frame.depth, max_depth) & (row_ok & crow_ok)[:, None] & (col_ok & ccol_ok)[None, :]
    rows, cols = np.nonzero(usable)
    return rows, cols, lambda r, c: (mrow_of[r], mcol_of[c], crow_of[r], ccol_of[c])


def pair_pixels(frame: FrameData, mask_hw, max_depth: Optional[float] = None):
    """Valid depth pixels that see a point inside the colour image, and a function mapping (some of) them to
    (mask row, mask col, colour row, colour col). General path: any extrinsics and skew."""
    depth_to_color = np.linalg.inv(frame.extrinsic_color) @ frame.extrinsic_depth
    if (np.allclose(depth_to_color, np.eye(4)) and frame.intrinsic_depth[0, 1] == 0
            and frame.intrinsic_color[0, 1] == 0):
        return pair_pixels_registered(frame, mask_hw, max_depth)
    rows, cols, xyz_depth = backproject_depth(frame.depth, frame.intrinsic_depth, max_depth)
    xyz_color = transform_points(xyz_depth, depth_to_color)
    color_hw = frame.color.shape[:2]
    k_mask = scale_intrinsic(frame.intrinsic_color, color_hw, mask_hw)
    mrow, mcol, inside = project_points(xyz_color, k_mask, mask_hw)
    crow, ccol, inside_color = project_points(xyz_color, frame.intrinsic_color, color_hw)
    keep = np.flatnonzero(inside & inside_color)
    lookup = np.full(frame.depth.shape, -1, np.int64)
    lookup[rows[keep], cols[keep]] = np.arange(len(keep))
    mrow, mcol, crow, ccol = mrow[keep], mcol[keep], crow[keep], ccol[keep]

    def to_pixels(r, c):
        i = lookup[r, c]
        return mrow[i], mcol[i], crow[i], ccol[i]

    return rows[keep], cols[keep], to_pixels


def frame_points(frame: FrameData, region_map: np.ndarray, num_points: int, rng: np.random.Generator,
                 axis_align: Optional[np.ndarray] = None, max_depth: Optional[float] = None) -> Dict[str, np.ndarray]:
    """Back-project a frame's depth, pair each point with its colour pixel and mask region, sample N points.

    ``region_map`` is the (Hm, Wm) int region-id map of the colour image resized to (Hm, Wm). Sampling is
    uniform over the usable depth pixels (valid depth, projecting inside the colour image), without
    replacement when there are at least ``num_points`` of them and with replacement otherwise; only the
    sampled pixels are back-projected.

    Returns ``points`` (N, 3) float32 world (axis-aligned), ``colors`` (N, 3) uint8, ``point_region`` (N,)
    int32 and ``point_pixel`` (N, 2) int32 (row, col) in the mask image.
    """
    rows, cols, to_pixels = pair_pixels(frame, region_map.shape, max_depth)
    if rows.size == 0:
        raise FrameError('invalid_depth', frame.record.depth_path,
                         'no valid depth pixel projects into the colour image')
    pick = rng.choice(rows.size, num_points, replace=rows.size < num_points)
    rows, cols = rows[pick], cols[pick]
    mrow, mcol, crow, ccol = to_pixels(rows, cols)
    z = frame.depth[rows, cols].astype(np.float32)
    k = frame.intrinsic_depth
    y = (rows.astype(np.float32) - np.float32(k[1, 2])) / np.float32(k[1, 1]) * z
    x = ((cols.astype(np.float32) - np.float32(k[0, 2])) * z - np.float32(k[0, 1]) * y) / np.float32(k[0, 0])
    to_world = frame.pose @ frame.extrinsic_depth
    if axis_align is not None:
        to_world = axis_align @ to_world
    return dict(
        points=transform_points(np.stack([x, y, z], axis=1), to_world),
        colors=frame.color[crow, ccol],
        point_region=region_map[mrow, mcol].astype(np.int32),
        point_pixel=np.stack([mrow, mcol], axis=1).astype(np.int32))
