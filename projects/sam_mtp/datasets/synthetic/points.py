"""Point clouds of a synthetic room: points sampled uniformly by area on the visible surfaces."""
from typing import Dict

import numpy as np

from .rooms import SyntheticScene, surface_color


def _surface_patches(scene: SyntheticScene):
    """Sampling patches: rectangles (kind 0), cylinder sides (1) and discs (2), with areas and surface ids."""
    rows = []  # (kind, surface, origin, e1, e2, normal, radius, height)
    for i, o in enumerate(scene.objects):
        half = o.size / 2.0
        if o.kind == 'box':
            c, s = np.cos(o.yaw), np.sin(o.yaw)
            axes = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # local axes in world
            for a in range(3):
                b1, b2 = [x for x in range(3) if x != a]
                for sign in (-1.0, 1.0):
                    normal = sign * axes[a]
                    corner = o.center + normal * half[a] - axes[b1] * half[b1] - axes[b2] * half[b2]
                    rows.append((0, i, corner, 2 * half[b1] * axes[b1], 2 * half[b2] * axes[b2], normal, 0., 0.))
        else:
            z0 = o.center - np.array([0.0, 0.0, half[2]])
            rows.append((1, i, z0, np.zeros(3), np.zeros(3), np.zeros(3), half[0], o.size[2]))
            rows.append((2, i, o.center + [0, 0, half[2]], np.zeros(3), np.zeros(3), np.array([0, 0, 1.]),
                         half[0], 0.))
            rows.append((2, i, z0, np.zeros(3), np.zeros(3), np.array([0, 0, -1.]), half[0], 0.))
    lx, ly, lz = scene.room_size
    k = len(scene.objects)
    ex, ey, ez = np.array([lx, 0, 0]), np.array([0, ly, 0]), np.array([0, 0, lz])
    rows.append((0, k, np.zeros(3), ex, ey, np.array([0, 0, 1.]), 0., 0.))
    rows.append((0, k + 1, np.zeros(3), ex, ez, np.array([0, 1., 0]), 0., 0.))
    rows.append((0, k + 2, np.array([lx, 0, 0]), ey, ez, np.array([-1., 0, 0]), 0., 0.))
    rows.append((0, k + 3, np.array([0, ly, 0]), ex, ez, np.array([0, -1., 0]), 0., 0.))
    rows.append((0, k + 4, np.zeros(3), ey, ez, np.array([1., 0, 0]), 0., 0.))
    kind = np.array([r[0] for r in rows])
    surface = np.array([r[1] for r in rows])
    origin, e1, e2, normal = (np.array([r[j] for r in rows], dtype=np.float64) for j in (2, 3, 4, 5))
    radius = np.array([r[6] for r in rows])
    height = np.array([r[7] for r in rows])
    area = np.select([kind == 0, kind == 1, kind == 2],
                     [np.linalg.norm(np.cross(e1, e2), axis=-1), 2 * np.pi * radius * height, np.pi * radius**2])
    return kind, surface, origin, e1, e2, normal, radius, height, area


def points_inside_objects(scene: SyntheticScene, points: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """(N, K) bool: point n lies in the closed volume of object k, grown by ``tol``."""
    inside = np.zeros((len(points), len(scene.objects)), dtype=bool)
    for k, o in enumerate(scene.objects):  # loop over a handful of objects, vectorised over points
        rel = points - o.center
        half = o.size / 2.0 + tol
        if o.kind == 'box':
            c, s = np.cos(o.yaw), np.sin(o.yaw)
            lx, ly = c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]
            inside[:, k] = (np.abs(lx) <= half[0]) & (np.abs(ly) <= half[1]) & (np.abs(rel[:, 2]) <= half[2])
        else:
            inside[:, k] = (rel[:, 0]**2 + rel[:, 1]**2 <= half[0]**2) & (np.abs(rel[:, 2]) <= half[2])
    return inside


def sample_scene_points(scene: SyntheticScene, num_points: int, rng: np.random.Generator,
                        color_noise: float = 3.0) -> Dict[str, np.ndarray]:
    """Sample ``num_points`` points uniformly (by area) on the visible surfaces of the scene.

    Visible means: not inside another object (floor under furniture, wall behind a picture) and, for
    objects, not on the room boundary (the bottom of furniture, the back of wall items). Like a ScanNet mesh,
    the open top of the room has no points.

    Returns a dict of aligned-frame ``xyz`` (N, 3) float64, ``rgb`` (N, 3) float64 integer-valued 0-255,
    ``normal`` (N, 3), ``surface`` (N,), ``instance`` (N,) int64 and ``nyu40`` (N,) int64.
    """
    if num_points < 1:
        raise ValueError(f'num_points must be >= 1, got {num_points}')
    kind, surf, origin, e1, e2, normal, radius, height, area = _surface_patches(scene)
    num_obj = len(scene.objects)
    kept_xyz, kept_n, kept_s = [], [], []
    have = 0
    draw = int(num_points * 1.4) + 64
    while have < num_points:
        patch = rng.choice(len(area), size=draw, p=area / area.sum())
        u, v = rng.random(draw), rng.random(draw)
        kd, o = kind[patch], origin[patch]
        theta = 2 * np.pi * np.where(kd == 1, u, v)
        ring = np.stack([np.cos(theta), np.sin(theta), np.zeros(draw)], -1)
        rect = o + u[:, None] * e1[patch] + v[:, None] * e2[patch]
        side = o + radius[patch, None] * ring + (v * height[patch])[:, None] * np.array([0, 0, 1.0])
        disc = o + (radius[patch] * np.sqrt(u))[:, None] * ring
        xyz = np.where((kd == 0)[:, None], rect, np.where((kd == 1)[:, None], side, disc))
        nrm = np.where((kd == 1)[:, None], ring, normal[patch])
        s = surf[patch]
        inside = points_inside_objects(scene, xyz)
        is_obj = s < num_obj
        inside[np.flatnonzero(is_obj), s[is_obj]] = False  # a surface never hides itself
        tol = 1e-4
        on_boundary = ((xyz[:, :2] <= tol).any(-1) | (xyz[:, :2] >= scene.room_size[:2] - tol).any(-1)
                       | (xyz[:, 2] <= tol))
        keep = ~inside.any(-1) & ~(is_obj & on_boundary)
        kept_xyz.append(xyz[keep])
        kept_n.append(nrm[keep])
        kept_s.append(s[keep])
        have += int(keep.sum())
        draw = max(64, int((num_points - have) * 1.5) + 64)
    xyz, nrm, s = np.concatenate(kept_xyz), np.concatenate(kept_n), np.concatenate(kept_s)
    # Random order (mesh vertex order carries no meaning) and exactly num_points points.
    order = rng.permutation(len(xyz))[:num_points]
    xyz, nrm, s = xyz[order], nrm[order], s[order]
    rgb = surface_color(scene, s, xyz, nrm) + rng.normal(0.0, color_noise, (num_points, 3))
    return dict(xyz=xyz, rgb=np.clip(np.round(rgb), 0, 255), normal=nrm, surface=s,
                instance=scene.surface_instance_ids[s], nyu40=scene.surface_nyu40_ids[s])
