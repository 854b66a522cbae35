"""Ray casting of a synthetic room (boxes rotated about z, vertical cylinders, the room's floor and walls) and the
rendering of posed RGB-D frames with their instance and NYU40 label images."""
from typing import Sequence, Tuple

import numpy as np

from .rooms import Primitive, SyntheticScene, surface_color

# Colour shown where a ray leaves the room through the open top (ScanNet reconstructions rarely have ceilings;
# the camera still sees one, but there is no geometry and the depth is invalid there).
_CEILING_RGB = np.array([228., 228., 232.])


def _box_params(objects: Sequence[Primitive]):
    idx = np.array([i for i, o in enumerate(objects) if o.kind == 'box'], dtype=np.int64)
    boxes = [objects[i] for i in idx]
    centers = np.array([b.center for b in boxes]).reshape(-1, 3)
    half = np.array([b.size for b in boxes]).reshape(-1, 3) / 2.0
    yaw = np.array([b.yaw for b in boxes])
    return idx, centers, half, np.cos(yaw), np.sin(yaw)


def _cylinder_params(objects: Sequence[Primitive]):
    idx = np.array([i for i, o in enumerate(objects) if o.kind == 'cylinder'], dtype=np.int64)
    cyl = [objects[i] for i in idx]
    centers = np.array([o.center for o in cyl]).reshape(-1, 3)
    radius = np.array([o.size[0] / 2.0 for o in cyl])
    half_h = np.array([o.size[2] / 2.0 for o in cyl])
    return idx, centers, radius, half_h


def _to_box_frame(vec, cos, sin):
    """Rotate world vectors (..., 3) by -yaw; ``cos``/``sin`` broadcast against ``vec[..., 0]``."""
    return (cos * vec[..., 0] + sin * vec[..., 1], -sin * vec[..., 0] + cos * vec[..., 1], vec[..., 2])


def _hit_boxes(origin, dirs, centers, half, cos, sin, eps=1e-6):
    """Entry distance (B, R) of rays against boxes rotated about z; inf = miss (or origin inside)."""
    o_local = _to_box_frame(origin[None] - centers, cos, sin)                      # 3 x (B,)
    d_local = _to_box_frame(dirs[None], cos[:, None], sin[:, None])                # 3 x (B, R)
    t_near = np.full(d_local[2].shape, -np.inf)
    t_far = np.full(d_local[2].shape, np.inf)
    for axis in range(3):  # slabs of the three box axes
        d = d_local[axis]
        d = np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1 = (-half[:, axis, None] - o_local[axis][:, None]) / d
        t2 = (half[:, axis, None] - o_local[axis][:, None]) / d
        t_near = np.maximum(t_near, np.minimum(t1, t2))
        t_far = np.minimum(t_far, np.maximum(t1, t2))
    hit = (t_near <= t_far) & (t_near > eps)
    return np.where(hit, t_near, np.inf)


def _hit_cylinders(origin, dirs, centers, radius, half_h, eps=1e-6):
    """Entry distance (C, R) of rays against closed vertical cylinders; inf = miss."""
    o = origin[None] - centers                                                     # (C, 3)
    dx, dy, dz = dirs[None, :, 0], dirs[None, :, 1], dirs[None, :, 2]
    ox, oy, oz = o[:, 0:1], o[:, 1:2], o[:, 2:3]
    r, h = radius[:, None], half_h[:, None]
    a = dx * dx + dy * dy
    b = 2.0 * (ox * dx + oy * dy)
    c = ox * ox + oy * oy - r * r
    disc = b * b - 4.0 * a * c
    t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * np.maximum(a, 1e-20))
    side_ok = (disc >= 0) & (a > 1e-20) & (t_side > eps) & (np.abs(oz + t_side * dz) <= h)
    t = np.where(side_ok, t_side, np.inf)
    dz_safe = np.where(np.abs(dz) < 1e-12, 1e-12, dz)
    for cap_z in (h, -h):  # top and bottom discs
        t_cap = (cap_z - oz) / dz_safe
        px, py = ox + t_cap * dx, oy + t_cap * dy
        ok = (t_cap > eps) & (px * px + py * py <= r * r)
        t = np.minimum(t, np.where(ok, t_cap, np.inf))
    return t


# (axis, ray goes to the positive side) of each wall in ROOM_SURFACES[1:]
_WALL_AXES = ((1, False), (0, True), (1, True), (0, False))


def _hit_room(origin, dirs, room):
    """Exit distance (R,) and room-surface index 0..4 (-1 = open top) of rays from inside the room."""
    d_safe = np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
    bound = np.where(d_safe > 0, room[None], 0.0)
    t_axes = (bound - origin[None]) / d_safe
    axis = np.argmin(t_axes, -1)
    t = np.take_along_axis(t_axes, axis[:, None], -1)[:, 0]
    positive = np.take_along_axis(d_safe, axis[:, None], -1)[:, 0] > 0
    surface = np.full(len(dirs), -1, dtype=np.int64)
    surface[(axis == 2) & ~positive] = 0
    for k, (ax, pos) in enumerate(_WALL_AXES):
        surface[(axis == ax) & (positive == pos)] = k + 1
    return np.where(surface >= 0, t, np.inf), surface


def surface_normals(scene: SyntheticScene, surface: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Outward (room: inward) unit normals (N, 3) of points lying on the given surfaces."""
    normals = np.zeros((len(points), 3))
    num_obj = len(scene.objects)
    room_normals = np.array([[0, 0, 1.], [0, 1., 0], [-1., 0, 0], [0, -1., 0], [1., 0, 0]])
    on_room = surface >= num_obj
    normals[on_room] = room_normals[surface[on_room] - num_obj]
    for k, o in enumerate(scene.objects):  # a handful of objects, vectorised over their points
        sel = np.flatnonzero(surface == k)
        if not len(sel):
            continue
        rel = points[sel] - o.center
        half = o.size / 2.0
        if o.kind == 'box':
            c, s = np.cos(o.yaw), np.sin(o.yaw)
            local = np.stack(_to_box_frame(rel, c, s), -1)
            # the face a point lies on is the axis where it is closest to the half extent
            axis = np.argmax(np.abs(local) / half, -1)
            n_local = np.zeros_like(local)
            n_local[np.arange(len(sel)), axis] = np.sign(local[np.arange(len(sel)), axis])
            normals[sel] = np.stack([c * n_local[:, 0] - s * n_local[:, 1], s * n_local[:, 0] + c * n_local[:, 1],
                                     n_local[:, 2]], -1)
        else:
            radial = np.hypot(rel[:, 0], rel[:, 1]) / half[0]
            on_cap = np.abs(rel[:, 2]) / half[2] > radial
            side = np.stack([rel[:, 0], rel[:, 1], np.zeros(len(sel))], -1) / np.maximum(
                np.linalg.norm(rel[:, :2], axis=-1, keepdims=True), 1e-12)
            cap = np.stack([np.zeros(len(sel)), np.zeros(len(sel)), np.sign(rel[:, 2])], -1)
            normals[sel] = np.where(on_cap[:, None], cap, side)
    return normals


def cast_rays(scene: SyntheticScene, origin: np.ndarray, dirs: np.ndarray, chunk: int = 32768):
    """Nearest hit of rays from ``origin`` (aligned frame, inside the room) along ``dirs`` (R, 3).

    Returns ``t`` (R,) in units of ``dirs`` (inf = no hit) and ``surface`` (R,), the surface index (-1 = no
    hit). Rays are processed in chunks to bound memory; each chunk is vectorised over rays x primitives.
    """
    # float32 halves the memory traffic of the (primitives x rays) arrays; depth error stays below 1 um.
    f32 = np.float32
    origin = np.asarray(origin, dtype=f32)
    dirs = np.asarray(dirs, dtype=f32)
    box_idx, *box_params = _box_params(scene.objects)
    box_c, box_h, box_cos, box_sin = (np.asarray(x, dtype=f32) for x in box_params)
    cyl_idx, *cyl_params = _cylinder_params(scene.objects)
    cyl_c, cyl_r, cyl_h = (np.asarray(x, dtype=f32) for x in cyl_params)
    num_obj = len(scene.objects)
    t_out = np.empty(len(dirs), dtype=f32)
    s_out = np.empty(len(dirs), dtype=np.int64)
    for start in range(0, len(dirs), chunk):
        d = dirs[start:start + chunk]
        t_room, s_room = _hit_room(origin, d, scene.room_size.astype(f32))
        ts, ids = [t_room[None]], [np.array([-1])]
        if len(box_idx):
            ts.append(_hit_boxes(origin, d, box_c, box_h, box_cos, box_sin))
            ids.append(box_idx)
        if len(cyl_idx):
            ts.append(_hit_cylinders(origin, d, cyl_c, cyl_r, cyl_h))
            ids.append(cyl_idx)
        t_all, id_all = np.concatenate(ts), np.concatenate(ids)
        best = np.argmin(t_all, 0)
        t = t_all[best, np.arange(len(d))]
        s = np.where(best == 0, np.where(s_room >= 0, s_room + num_obj, -1), id_all[best])
        t_out[start:start + chunk] = t
        s_out[start:start + chunk] = np.where(np.isfinite(t), s, -1)
    return t_out, s_out


def _as_intrinsic3(intrinsic: np.ndarray) -> np.ndarray:
    k = np.asarray(intrinsic, dtype=np.float64)
    if k.shape not in ((3, 3), (4, 4)):
        raise ValueError(f'intrinsic must be 3x3 or 4x4, got shape {k.shape}')
    k = k[:3, :3]
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f'intrinsic focal lengths must be > 0, got fx={k[0, 0]}, fy={k[1, 1]}')
    return k


def render_frame(scene: SyntheticScene, pose: np.ndarray, intrinsic: np.ndarray, height: int,
                 width: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast one noise-free RGB-D frame with its instance and NYU40 label images.

    Args:
        scene: the scene.
        pose: (4, 4) camera-to-world in the RAW scan frame (what ``pose/<id>.txt`` holds), OpenCV camera axes.
        intrinsic: (3, 3) or (4, 4) pinhole matrix for an image of ``height`` x ``width``; pixel (u, v) is the
            ray through ``((u - cx) / fx, (v - cy) / fy, 1)``.

    Returns:
        depth_m (H, W) float32 camera-z depth in metres, 0 where no surface (open top of the room);
        color (H, W, 3) uint8 RGB; instance (H, W) int32 instance id, 0 = nothing; label (H, W) int32 NYU40 id,
        0 = nothing.
    """
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f'pose must be 4x4, got shape {pose.shape}')
    if not np.isfinite(pose).all():
        raise ValueError('pose is not finite (ScanNet marks lost tracking with -inf); such frames cannot be '
                         'rendered or back-projected')
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got height={height}, width={width}')
    k = _as_intrinsic3(intrinsic)
    cam_to_aligned = scene.axis_align_matrix @ pose
    origin = cam_to_aligned[:3, 3]
    if (origin <= 0).any() or (origin >= scene.room_size).any():
        raise ValueError(f'camera centre {origin.round(3).tolist()} (aligned frame) is outside the room '
                         f'[0, {scene.room_size.round(3).tolist()}] of {scene.scene_id}')
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing='ij')
    d_cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
    # With a unit camera-z component, the ray parameter t is the depth itself.
    d_world = d_cam @ cam_to_aligned[:3, :3].T
    t, surface = cast_rays(scene, origin, d_world)
    hit = surface >= 0
    depth = np.where(hit, t, 0.0)
    rgb = np.broadcast_to(_CEILING_RGB, (len(t), 3)).copy()
    points = origin + d_world[hit] * t[hit, None]
    rgb[hit] = surface_color(scene, surface[hit], points, surface_normals(scene, surface[hit], points))
    instance = np.zeros(len(t), dtype=np.int32)
    label = np.zeros(len(t), dtype=np.int32)
    instance[hit] = scene.surface_instance_ids[surface[hit]]
    label[hit] = scene.surface_nyu40_ids[surface[hit]]
    return (depth.reshape(height, width).astype(np.float32),
            np.round(rgb).astype(np.uint8).reshape(height, width, 3), instance.reshape(height, width),
            label.reshape(height, width))
