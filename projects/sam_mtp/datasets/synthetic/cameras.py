"""Cameras of a synthetic room: ScanNet-like intrinsics and a hand-held-like loop of poses around the room."""
import numpy as np

from .rooms import SyntheticScene


def scannet_like_intrinsic(width: int, height: int) -> np.ndarray:
    """4x4 pinhole matrix with ScanNet's field of view (fx = fy = 0.9 * width, about 58 deg horizontally)."""
    if width <= 0 or height <= 0:
        raise ValueError(f'image size must be positive, got {width}x{height}')
    k = np.eye(4)
    k[0, 0] = k[1, 1] = np.round(0.9 * width, 6)
    k[0, 2], k[1, 2] = (width - 1) / 2.0, (height - 1) / 2.0
    return k


def _look_at(position, target, roll):
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], 1)
    pose[:3, 3] = position
    return pose


def make_camera_poses(scene: SyntheticScene, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Camera-to-world poses (F, 4, 4) in the RAW frame along a hand-held-like loop around the room.

    Cameras stay inside the room, 1.2-1.6 m high and clear of furniture, and look at the furniture from across
    the room with a few degrees of roll, so frames see several objects that occlude each other. Entries are
    rounded to 6 decimals, like the text files they are written to.
    """
    if num_frames < 1:
        raise ValueError(f'num_frames must be >= 1, got {num_frames}')
    room = scene.room_size
    centre = room / 2.0
    semi = np.maximum(room[:2] / 2.0 - 0.75, 0.25)
    theta0 = rng.uniform(0.0, 2 * np.pi)
    sweep = rng.uniform(0.6, 0.95) * 2 * np.pi * rng.choice([-1.0, 1.0])
    theta = theta0 + sweep * np.arange(num_frames) / num_frames + rng.normal(0.0, 0.05, num_frames)
    xy = centre[:2] + semi * np.stack([np.cos(theta), np.sin(theta)], -1) + rng.normal(0.0, 0.08, (num_frames, 2))
    z = rng.uniform(1.25, 1.55) + 0.05 * np.sin(np.arange(num_frames) * 0.7) + rng.normal(0.0, 0.02, num_frames)
    # Free cells for cameras that would land in furniture: 0.15 m grid, 0.4 m from walls and objects.
    gx, gy = np.meshgrid(np.arange(0.4, room[0] - 0.39, 0.15), np.arange(0.4, room[1] - 0.39, 0.15))
    grid = np.stack([gx.ravel(), gy.ravel()], -1)
    boxes = np.array([o.aabb()[:, :2] for o in scene.objects])                    # (K, 2, 2)

    def blocked(p):
        return ((p[:, None] > boxes[None, :, 0] - 0.4) & (p[:, None] < boxes[None, :, 1] + 0.4)).all(-1).any(-1)

    free = grid[~blocked(grid)]
    if not len(free):
        raise RuntimeError(f'{scene.scene_id}: no free space for a camera')
    bad = blocked(xy) | (xy < 0.3).any(-1) | (xy > room[:2] - 0.3).any(-1)
    if bad.any():
        dist = np.linalg.norm(xy[bad, None] - free[None], axis=-1)
        xy[bad] = free[np.argmin(dist, -1)]
    floor_objects = [o for o in scene.objects if o.center[2] < 1.0] or scene.objects
    focus = np.mean([o.center[:2] for o in floor_objects], 0)
    candidates = [focus, centre[:2]] + [o.center[:2] for o in scene.objects]
    poses = np.empty((num_frames, 4, 4))
    for f in range(num_frames):  # a handful of frames; each pose is a few 3x3 operations
        target_xy = next((c for c in candidates if np.linalg.norm(c - xy[f]) >= 1.0),
                         max(candidates, key=lambda c: np.linalg.norm(c - xy[f])))
        target = np.array([*(target_xy + rng.normal(0.0, 0.25, 2)), rng.uniform(0.4, 0.9)])
        roll = np.deg2rad(np.clip(rng.normal(0.0, 2.0), -5.0, 5.0))
        poses[f] = _look_at(np.array([*xy[f], z[f]]), target, roll)
    raw = np.linalg.inv(scene.axis_align_matrix)[None] @ poses
    return np.round(raw, 6)
