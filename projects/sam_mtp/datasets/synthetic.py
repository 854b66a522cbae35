"""Seeded synthetic indoor scenes written in ScanNet's real on-disk formats.

There is no ScanNet in CI, so this module builds small rooms (floor, four walls, 3-8 furniture primitives of the
18 ScanNet detection classes), samples a coloured point cloud on their visible surfaces, ray-casts posed RGB-D
frames of them, and writes both:

* mmdet3d's ScanNet layout (``points/``, ``instance_mask/``, ``semantic_mask/``, ``scannet_infos_<split>.pkl``
  in the v2 info format, ``seg_info/``), which mmdet3d 1.4.0's ``ScanNetDataset`` / ``ScanNetSegDataset``
  read unchanged;
* a SensReader-style frame export (``posed_images/<scene>/{color,depth,pose,intrinsic,instance,label}``) and
  ScanNet's per-scan meta file (``scans/<scene>/<scene>.txt`` with ``axisAlignment``).

Frames of reference follow ScanNet. Scene geometry lives in the *aligned* frame (walls on the axes, floor at
z = 0). Everything ScanNet stores raw is stored raw here too: point clouds and camera poses are in the *raw* scan
frame, and ``axis_align_matrix`` (4x4, a rotation about z plus a translation) maps raw to aligned, so mmdet3d's
``GlobalAlignment`` is needed to bring the points onto the boxes. Cameras use the OpenCV convention (x right,
y down, z forward); poses are camera-to-world; depth is the z coordinate in the camera, in millimetres on disk.

Instance ids: object ``k`` (0-based, in ``scene.objects`` order) has instance id ``k + 1`` and is
``instances[k]`` of the info file; the floor and the four walls take the ids after the objects. 0 means
"nothing" in every instance/label image and is never used by a scene point.

Everything is a pure function of ``(seed, scene index)``: the same arguments give byte-identical files.
"""
import json
import os
import os.path as osp
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmengine.logging import print_log

from projects.sam_mtp.labels.formats.frames import FrameExportWriter

SYNTHETIC_FORMAT_VERSION = 1
MANIFEST_NAME = 'synthetic_info.json'

SCANNET_DET_CLASSES = ('cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf', 'picture',
                       'counter', 'desk', 'curtain', 'refrigerator', 'showercurtrain', 'toilet', 'sink',
                       'bathtub', 'garbagebin')
# NYU40 id of each detection class (garbagebin is annotated as otherfurniture, 39, in ScanNet).
SCANNET_DET_NYU40_IDS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)
# The 20 NYU40 ids of the ScanNet semantic-segmentation benchmark, in mmdet3d's ScanNetSegDataset order.
SCANNET_SEG_NYU40_IDS = (1, 2) + SCANNET_DET_NYU40_IDS
NYU40_WALL = 1
NYU40_FLOOR = 2

# Room surfaces after the objects, in this order. Walls are named by the plane they lie on.
ROOM_SURFACES = ('floor', 'wall_y0', 'wall_xmax', 'wall_ymax', 'wall_x0')

# Colour shown where a ray leaves the room through the open top (ScanNet reconstructions rarely have ceilings;
# the camera still sees one, but there is no geometry and the depth is invalid there).
_CEILING_RGB = np.array([228., 228., 232.])
_FLOOR_RGB = np.array([150., 112., 78.])
_WALL_RGB = np.array([206., 204., 192.])
_LIGHT_DIR = np.array([0.3, -0.5, 0.81]) / np.linalg.norm([0.3, -0.5, 0.81])
# Fixed non-axis-aligned spatial frequencies (rad/m) of the surface texture, so that flat walls get a pattern too.
_TEXTURE_FREQ = np.array([[5.1, 2.3, 3.7], [-2.9, 6.2, 1.3], [1.7, -3.1, 5.9]])
_TEXTURE_PHASE = np.array([0.3, 1.9, 4.1])


@dataclass(frozen=True)
class _ClassSpec:
    """Size prior (metres) and placement of one detection class.

    Floor items: size = (length, depth, height). Wall items: size = (width along the wall, thickness, height)
    and ``bottom`` is the range of the height of their lower edge above the floor.
    """
    size_min: Tuple[float, float, float]
    size_max: Tuple[float, float, float]
    mount: str = 'floor'
    bottom: Tuple[float, float] = (0.0, 0.0)
    cylinder_prob: float = 0.0


_CLASS_SPECS = {
    'cabinet': _ClassSpec((0.6, 0.4, 0.8), (1.2, 0.6, 1.2)),
    'bed': _ClassSpec((1.9, 1.0, 0.45), (2.1, 1.6, 0.65)),
    'chair': _ClassSpec((0.45, 0.45, 0.8), (0.6, 0.6, 1.0)),
    'sofa': _ClassSpec((1.5, 0.8, 0.7), (2.2, 1.0, 0.9)),
    'table': _ClassSpec((0.8, 0.6, 0.7), (1.6, 1.0, 0.78), cylinder_prob=0.3),
    'door': _ClassSpec((0.8, 0.05, 2.0), (1.0, 0.06, 2.1), mount='wall'),
    'window': _ClassSpec((0.8, 0.04, 1.0), (1.6, 0.06, 1.3), mount='wall', bottom=(0.8, 1.0)),
    'bookshelf': _ClassSpec((0.8, 0.3, 1.5), (1.2, 0.4, 2.0)),
    'picture': _ClassSpec((0.4, 0.03, 0.3), (1.0, 0.04, 0.8), mount='wall', bottom=(1.2, 1.5)),
    'counter': _ClassSpec((1.2, 0.55, 0.85), (2.4, 0.65, 0.95)),
    'desk': _ClassSpec((1.0, 0.6, 0.72), (1.6, 0.8, 0.78)),
    'curtain': _ClassSpec((1.0, 0.06, 2.0), (2.0, 0.1, 2.3), mount='wall', bottom=(0.05, 0.1)),
    'refrigerator': _ClassSpec((0.6, 0.6, 1.6), (0.9, 0.75, 1.9)),
    'showercurtrain': _ClassSpec((1.0, 0.03, 1.7), (1.6, 0.05, 2.0)),
    'toilet': _ClassSpec((0.38, 0.6, 0.7), (0.45, 0.75, 0.8)),
    'sink': _ClassSpec((0.5, 0.4, 0.8), (0.8, 0.55, 0.9)),
    'bathtub': _ClassSpec((1.5, 0.7, 0.5), (1.75, 0.85, 0.6)),
    'garbagebin': _ClassSpec((0.3, 0.3, 0.4), (0.45, 0.45, 0.7), cylinder_prob=1.0),
}


def _class_colors() -> np.ndarray:
    """One well-separated base colour per detection class (golden-ratio hues), (18, 3) float RGB 0-255."""
    hues = (np.arange(len(SCANNET_DET_CLASSES)) * 0.618034) % 1.0
    hsv = np.stack([hues * 180.0, np.full_like(hues, 170.0), np.full_like(hues, 215.0)], -1)
    rgb = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0]
    return rgb.astype(np.float64)


CLASS_COLORS = _class_colors()


@dataclass
class Primitive:
    """One furniture primitive in the aligned scene frame.

    ``kind`` is ``'box'`` (rotated by ``yaw`` about +z) or ``'cylinder'`` (vertical axis, ``size[0]`` is the
    diameter). ``center`` is the volume centre, ``size`` the full extents (dx, dy, dz) in the primitive's own
    frame. ``color`` is the base RGB (0-255) before texture and shading.
    """
    kind: str
    center: np.ndarray
    size: np.ndarray
    yaw: float
    instance_id: int
    nyu40_id: int
    det_label: int
    color: np.ndarray

    def aabb(self) -> np.ndarray:
        """Axis-aligned bounds in the aligned frame, (2, 3) = [min, max]."""
        half = self.size / 2.0
        if self.kind == 'cylinder':
            ext = np.array([half[0], half[0], half[2]])
        else:
            c, s = abs(np.cos(self.yaw)), abs(np.sin(self.yaw))
            ext = np.array([c * half[0] + s * half[1], s * half[0] + c * half[1], half[2]])
        return np.stack([self.center - ext, self.center + ext])


@dataclass
class SyntheticScene:
    """A room ``[0, Lx] x [0, Ly] x [0, H]`` of the aligned frame with furniture, and its raw-to-aligned map.

    Surfaces are indexed ``0..K-1`` for the objects and ``K..K+4`` for :data:`ROOM_SURFACES`; the per-surface
    tables below turn a surface index into what is written to disk.
    """
    scene_id: str
    room_size: np.ndarray
    objects: List[Primitive]
    axis_align_matrix: np.ndarray
    room_instance_ids: np.ndarray
    room_colors: np.ndarray

    @property
    def num_surfaces(self) -> int:
        return len(self.objects) + len(ROOM_SURFACES)

    @property
    def surface_instance_ids(self) -> np.ndarray:
        return np.array([o.instance_id for o in self.objects] + list(self.room_instance_ids), dtype=np.int64)

    @property
    def surface_nyu40_ids(self) -> np.ndarray:
        room = [NYU40_FLOOR] + [NYU40_WALL] * (len(ROOM_SURFACES) - 1)
        return np.array([o.nyu40_id for o in self.objects] + room, dtype=np.int64)

    @property
    def surface_colors(self) -> np.ndarray:
        return np.concatenate([np.array([o.color for o in self.objects]).reshape(-1, 3), self.room_colors])

    def raw_to_aligned(self, points: np.ndarray) -> np.ndarray:
        """Apply ``axis_align_matrix`` to (N, 3) raw points."""
        return points @ self.axis_align_matrix[:3, :3].T + self.axis_align_matrix[:3, 3]

    def aligned_to_raw(self, points: np.ndarray) -> np.ndarray:
        inv = np.linalg.inv(self.axis_align_matrix)
        return points @ inv[:3, :3].T + inv[:3, 3]


# ----------------------------------------------------------------------------------------------------------
# Scene generation
# ----------------------------------------------------------------------------------------------------------
def scene_name(index: int) -> str:
    """ScanNet-style scan name of the ``index``-th synthetic scene, e.g. ``scene0007_00``."""
    if not 0 <= index <= 9999:
        raise ValueError(f'scene index must be in [0, 9999] to fit ScanNet names, got {index}')
    return f'scene{index:04d}_00'


def _scene_streams(seed: int, scene_index: int, n: int = 4) -> List[np.random.Generator]:
    """Independent random streams (geometry, cameras, points, frame noise) of one scene.

    Separate streams keep e.g. the geometry unchanged when only the number of points or frames changes.
    """
    if seed < 0 or scene_index < 0:
        raise ValueError(f'seed and scene index must be >= 0, got seed={seed}, scene_index={scene_index}')
    children = np.random.SeedSequence([seed, scene_index]).spawn(n)
    return [np.random.default_rng(c) for c in children]


def _make_axis_align_matrix(rng: np.random.Generator) -> np.ndarray:
    """A ScanNet-like raw-to-aligned matrix: rotation about z by a clearly non-right angle plus a translation.

    Entries are rounded to 6 decimals, as in ScanNet's meta files, and the rounded matrix is the ground truth
    used everywhere (points, poses), so the text file and the info file agree exactly. The z row and column are
    exactly (0, 0, 1) because mmdet3d's GlobalAlignment checks them with ``==``.
    """
    theta = rng.uniform(0.25, np.pi / 2 - 0.25) + (np.pi / 2) * rng.integers(4)
    c, s = np.round(np.cos(theta), 6), np.round(np.sin(theta), 6)
    t = np.round(np.concatenate([rng.uniform(-4.0, 4.0, 2), rng.uniform(-0.1, 0.1, 1)]), 6)
    mat = np.eye(4)
    mat[:2, :2] = [[c, -s], [s, c]]
    mat[:3, 3] = t
    return mat


def _overlaps(aabb: np.ndarray, others: Sequence[np.ndarray], margin: float) -> bool:
    for o in others:
        if (aabb[0, :2] < o[1, :2] + margin).all() and (o[0, :2] < aabb[1, :2] + margin).all():
            return True
    return False


def _place_floor_object(rng, spec, room, placed_aabbs, instance_id, nyu40_id, det_label, color,
                        wall_clearance=0.12, gap=0.08, tries=200) -> Optional[Primitive]:
    size = rng.uniform(spec.size_min, spec.size_max)
    kind = 'cylinder' if rng.random() < spec.cylinder_prob else 'box'
    if kind == 'cylinder':
        size[1] = size[0]
    # Furniture mostly follows the walls in the aligned frame; a small jitter makes the boxes not quite tight.
    yaw = (np.pi / 2) * rng.integers(4) + np.deg2rad(rng.normal(0.0, 4.0)) if kind == 'box' else 0.0
    for _ in range(tries):
        center = np.array([rng.uniform(0, room[0]), rng.uniform(0, room[1]), size[2] / 2])
        prim = Primitive(kind, center, size, float(yaw), instance_id, nyu40_id, det_label, color)
        box = prim.aabb()
        if (box[0, :2] < wall_clearance).any() or (box[1, :2] > room[:2] - wall_clearance).any():
            continue
        if not _overlaps(box, placed_aabbs, gap):
            return prim
    return None


def _place_wall_object(rng, spec, room, wall_spans, instance_id, nyu40_id, det_label, color,
                       tries=100) -> Optional[Primitive]:
    size = rng.uniform(spec.size_min, spec.size_max)
    bottom = rng.uniform(*spec.bottom)
    size[2] = min(size[2], room[2] - bottom - 0.05)
    for _ in range(tries):
        wall = int(rng.integers(4))  # index into ROOM_SURFACES[1:]
        length = room[0] if wall in (0, 2) else room[1]
        if length < size[0] + 0.4:
            continue
        along = rng.uniform(0.2 + size[0] / 2, length - 0.2 - size[0] / 2)
        lo, hi = along - size[0] / 2, along + size[0] / 2
        if any(w == wall and lo < h + 0.1 and l < hi + 0.1 for w, l, h in wall_spans):
            continue
        half_t = size[1] / 2
        z = bottom + size[2] / 2
        # yaw turns the local x axis along the wall and the thickness (local y) into the room.
        center, yaw = {
            0: (np.array([along, half_t, z]), 0.0),
            1: (np.array([room[0] - half_t, along, z]), np.pi / 2),
            2: (np.array([along, room[1] - half_t, z]), 0.0),
            3: (np.array([half_t, along, z]), np.pi / 2),
        }[wall]
        wall_spans.append((wall, lo, hi))
        return Primitive('box', center, size, yaw, instance_id, nyu40_id, det_label, color)
    return None


def generate_scene(seed: int, scene_index: int, num_objects: Optional[int] = None) -> SyntheticScene:
    """Build the ``scene_index``-th room of ``seed``: room box, 3-8 objects, axis alignment.

    ``num_objects`` (default: drawn from 3..8) is the number of objects asked for; a few may be dropped when
    they do not fit, never below one.
    """
    rng = _scene_streams(seed, scene_index)[0]
    room = np.array([rng.uniform(3.8, 7.0), rng.uniform(3.4, 6.0), rng.uniform(2.4, 3.0)])
    if num_objects is None:
        num_objects = int(rng.integers(3, 9))
    if num_objects < 1:
        raise ValueError(f'num_objects must be >= 1, got {num_objects}')
    # Wall items are half as likely: most of a ScanNet room's boxes are furniture.
    weights = np.array([0.5 if _CLASS_SPECS[c].mount == 'wall' else 1.0 for c in SCANNET_DET_CLASSES])
    labels = rng.choice(len(SCANNET_DET_CLASSES), size=num_objects, p=weights / weights.sum())
    # Place large items first so that they still fit.
    volume = np.array([np.prod(_CLASS_SPECS[SCANNET_DET_CLASSES[k]].size_max) for k in labels])
    labels = labels[np.argsort(-volume, kind='stable')]
    objects, aabbs, wall_spans = [], [], []
    for label in labels:
        name = SCANNET_DET_CLASSES[label]
        spec = _CLASS_SPECS[name]
        # Per-instance tint: distinct colours per class, objects of one class still differ slightly.
        color = np.clip(CLASS_COLORS[label] + rng.normal(0.0, 6.0, 3), 0, 255)
        args = (rng, spec, room)
        kwargs = dict(instance_id=len(objects) + 1, nyu40_id=SCANNET_DET_NYU40_IDS[label],
                      det_label=int(label), color=color)
        if spec.mount == 'wall':
            prim = _place_wall_object(*args, wall_spans, **kwargs)
        else:
            prim = _place_floor_object(*args, aabbs, **kwargs)
        if prim is not None:
            objects.append(prim)
            aabbs.append(prim.aabb())
    if not objects:
        raise RuntimeError(f'scene {scene_index} (seed {seed}): no object could be placed')
    num = len(objects)
    room_ids = np.arange(num + 1, num + 1 + len(ROOM_SURFACES), dtype=np.int64)
    room_colors = np.stack([_FLOOR_RGB] + [_WALL_RGB + rng.normal(0.0, 4.0, 3) for _ in ROOM_SURFACES[1:]])
    return SyntheticScene(scene_id=scene_name(scene_index), room_size=room, objects=objects,
                          axis_align_matrix=_make_axis_align_matrix(rng), room_instance_ids=room_ids,
                          room_colors=np.clip(room_colors, 0, 255))


# ----------------------------------------------------------------------------------------------------------
# Shading (shared by the points and the images so that colours agree)
# ----------------------------------------------------------------------------------------------------------
def surface_color(scene: SyntheticScene, surface: np.ndarray, points: np.ndarray,
                  normals: np.ndarray) -> np.ndarray:
    """Noise-free RGB (float, 0-255) of surface points: base colour x smooth texture x Lambert-like shading.

    The shading depends on the normal only (not on the viewer), so a point and the pixels that see it agree.
    """
    # float32 is plenty for a texture and halves the cost of the sines.
    texture = np.sin(points.astype(np.float32) @ _TEXTURE_FREQ.T.astype(np.float32)
                     + _TEXTURE_PHASE.astype(np.float32)).mean(-1).astype(np.float64)
    shade = 0.7 + 0.3 * np.abs(normals @ _LIGHT_DIR)
    rgb = scene.surface_colors[surface] * ((0.88 + 0.12 * texture) * shade)[:, None]
    return np.clip(rgb, 0.0, 255.0)


# ----------------------------------------------------------------------------------------------------------
# Ray casting
# ----------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------
# Point sampling
# ----------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------
# Cameras
# ----------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------------
def _write_bytes(path: str, data: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _write_image(path: str, image: np.ndarray, params: Sequence[int] = ()) -> None:
    ok, buf = cv2.imencode(osp.splitext(path)[1], image, list(params))
    if not ok:
        raise RuntimeError(f'{path}: OpenCV could not encode the image')
    _write_bytes(path, buf.tobytes())


def _fmt_num(x: float) -> str:
    return f'{x:f}'


def _scene_meta_text(scene, color_k, depth_k, color_size, depth_size, num_sequence_frames,
                     with_alignment) -> str:
    # ScanNet's test scans come without axisAlignment; the others carry it first.
    lines = [('axisAlignment', ' '.join(_fmt_num(x) for x in scene.axis_align_matrix.ravel()))] * with_alignment
    lines += [
        ('colorHeight', color_size[1]), ('colorWidth', color_size[0]),
        ('depthHeight', depth_size[1]), ('depthWidth', depth_size[0]),
        ('fx_color', _fmt_num(color_k[0, 0])), ('fx_depth', _fmt_num(depth_k[0, 0])),
        ('fy_color', _fmt_num(color_k[1, 1])), ('fy_depth', _fmt_num(depth_k[1, 1])),
        ('mx_color', _fmt_num(color_k[0, 2])), ('mx_depth', _fmt_num(depth_k[0, 2])),
        ('my_color', _fmt_num(color_k[1, 2])), ('my_depth', _fmt_num(depth_k[1, 2])),
        ('numColorFrames', num_sequence_frames), ('numDepthFrames', num_sequence_frames),
        ('sceneType', 'Synthetic'),
    ]
    return ''.join(f'{k} = {v}\n' for k, v in lines)


def _depth_to_png(depth_m: np.ndarray, rng: np.random.Generator, noise_at_1m: float, dropout: float,
                  max_depth: float) -> np.ndarray:
    """Sensor-like uint16 millimetres: depth-squared noise, random holes, range limit, 0 = invalid."""
    valid = (depth_m > 0) & (depth_m <= max_depth)
    noisy = depth_m + rng.normal(0.0, 1.0, depth_m.shape) * noise_at_1m * depth_m**2
    holes = rng.random(depth_m.shape) < dropout
    mm = np.round(noisy * 1000.0)
    mm[~valid | holes] = 0
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _bbox_from_points(xyz: np.ndarray) -> List[float]:
    lo, hi = xyz.min(0), xyz.max(0)
    return [float(x) for x in np.concatenate([(lo + hi) / 2.0, hi - lo])]


def _write_scene(root: str, scene: SyntheticScene, streams, points_per_scene: int, frames_per_scene: int,
                 color_size: Tuple[int, int], depth_size: Tuple[int, int], frame_stride: int,
                 invalid_poses: int, with_annotations: bool, depth_noise: float, depth_dropout: float,
                 max_depth: float) -> Tuple[dict, np.ndarray]:
    """Write one scene's point cloud, masks, meta file and frames; return its info entry and NYU40 labels."""
    sid = scene.scene_id
    _, cam_rng, point_rng, frame_rng = streams
    pts = sample_scene_points(scene, points_per_scene, point_rng)
    raw_xyz = scene.aligned_to_raw(pts['xyz']).astype(np.float32)
    cloud = np.concatenate([raw_xyz, pts['rgb'].astype(np.float32)], 1)
    _write_bytes(osp.join(root, 'points', f'{sid}.bin'), cloud.astype(np.float32).tobytes())
    info = dict(sample_idx=sid, lidar_points=dict(num_pts_feats=6, lidar_path=f'{sid}.bin'), instances=[])
    if with_annotations:
        _write_bytes(osp.join(root, 'instance_mask', f'{sid}.bin'), pts['instance'].astype(np.int64).tobytes())
        _write_bytes(osp.join(root, 'semantic_mask', f'{sid}.bin'), pts['nyu40'].astype(np.int64).tobytes())
        # Boxes from the stored (float32, raw) points mapped to the aligned frame, as ScanNet's converter does
        # from mesh vertices; the analytic box is the fall-back for an object that got no point.
        aligned = scene.raw_to_aligned(raw_xyz.astype(np.float64))
        instances = []
        for o in scene.objects:
            mine = aligned[pts['instance'] == o.instance_id]
            if len(mine) == 0:
                print_log(f'{sid}: object {o.instance_id} ({SCANNET_DET_CLASSES[o.det_label]}) got no points; '
                          'its box is the analytic one', logger='current', level=30)
                box = o.aabb()
                bbox = [float(x) for x in np.concatenate([box.mean(0), box[1] - box[0]])]
            else:
                bbox = _bbox_from_points(mine)
            instances.append(dict(bbox_3d=bbox, bbox_label_3d=int(o.det_label)))
        info.update(pts_instance_mask_path=f'{sid}.bin', pts_semantic_mask_path=f'{sid}.bin',
                    axis_align_matrix=scene.axis_align_matrix.tolist(), instances=instances)

    color_k = scannet_like_intrinsic(*color_size)
    depth_k = scannet_like_intrinsic(*depth_size)
    num_seq = (frames_per_scene - 1) * frame_stride + 1 if frames_per_scene else 0
    meta_text = _scene_meta_text(scene, color_k, depth_k, color_size, depth_size, num_seq, with_annotations)
    _write_bytes(osp.join(root, 'scans', sid, f'{sid}.txt'), meta_text.encode())
    if frames_per_scene:
        frame_dir = osp.join(root, 'posed_images', sid)
        # '%f' matrices like ScanNet's exporter; plain writes (the whole root is made in a temporary folder)
        frames = FrameExportWriter(frame_dir, write_bytes=_write_bytes, number_format='f', jpeg_quality=92)
        frames.write_calibration(color_k, depth_k)
        poses = make_camera_poses(scene, frames_per_scene, cam_rng)
        lost = set(frame_rng.choice(frames_per_scene, size=min(invalid_poses, frames_per_scene),
                                    replace=False).tolist()) if invalid_poses else set()
        for f, pose in enumerate(poses):
            fid = f * frame_stride
            depth_c, color, instance, label = render_frame(scene, pose, color_k, color_size[1], color_size[0])
            if depth_size == color_size:
                depth_m = depth_c
            else:
                depth_m = render_frame(scene, pose, depth_k, depth_size[1], depth_size[0])[0]
            noisy = np.clip(color.astype(np.float64) + frame_rng.normal(0.0, 3.0, color.shape), 0, 255)
            pose_out = np.full((4, 4), -np.inf) if f in lost else pose
            frames.write_frame(fid, np.round(noisy).astype(np.uint8),
                               _depth_to_png(depth_m, frame_rng, depth_noise, depth_dropout, max_depth), pose_out)
            _write_image(osp.join(frame_dir, 'instance', f'{fid}.png'), instance.astype(np.uint16))
            _write_image(osp.join(frame_dir, 'label', f'{fid}.png'), label.astype(np.uint16))
    return info, pts['nyu40']


def _seg_label_weight(nyu40_labels: Sequence[np.ndarray]) -> np.ndarray:
    """Per-class weights (20 classes + ignore) from label frequencies, 1 / log(1.2 + frequency)."""
    lut = np.full(41, len(SCANNET_SEG_NYU40_IDS), dtype=np.int64)
    lut[list(SCANNET_SEG_NYU40_IDS)] = np.arange(len(SCANNET_SEG_NYU40_IDS))
    counts = np.zeros(len(SCANNET_SEG_NYU40_IDS) + 1)
    for labels in nyu40_labels:
        counts += np.bincount(lut[labels], minlength=len(counts))
    freq = counts / max(counts.sum(), 1.0)
    return (1.0 / np.log(1.2 + freq)).astype(np.float32)


def _resampled_scene_idxs(num_points: Sequence[int], points_per_sample: int = 8192) -> np.ndarray:
    """Scene indices repeated in proportion to their point counts (at least once each), for training
    ScanNetSegDataset on patches of ``points_per_sample`` points."""
    n = np.asarray(num_points, dtype=np.float64)
    iters = max(int(n.sum() / points_per_sample), len(n))
    repeats = np.maximum(np.round(n / n.sum() * iters), 1).astype(np.int64)
    return np.repeat(np.arange(len(n)), repeats).astype(np.int32)


def parse_splits(text: str) -> List[Tuple[str, int]]:
    """``'train:6,val:2'`` -> ``[('train', 6), ('val', 2)]``."""
    out = []
    for part in text.split(','):
        name, sep, count = part.strip().partition(':')
        if not sep or not name or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f'bad split {part!r} in {text!r}: expected NAME:COUNT with COUNT >= 1, '
                             'e.g. "train:6,val:2"')
        out.append((name.strip(), int(count)))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f'split names repeat in {text!r}')
    return out


def _check_output_dir(out_dir: str) -> None:
    """Refuse to replace a folder this generator did not write (for instance a real ScanNet root)."""
    if osp.exists(out_dir) and not osp.isdir(out_dir):
        raise NotADirectoryError(f'{out_dir}: output path exists and is not a folder')
    if osp.isdir(out_dir) and os.listdir(out_dir) and not osp.isfile(osp.join(out_dir, MANIFEST_NAME)):
        raise FileExistsError(f'{out_dir}: folder is not empty and has no {MANIFEST_NAME}; refusing to replace '
                              'data this generator did not write (pick another --out or empty it)')


def write_synthetic_scannet(out_dir: str,
                            splits: Union[str, Sequence[Tuple[str, int]]] = (('train', 6), ('val', 2)),
                            seed: int = 0,
                            points_per_scene: int = 20000,
                            frames_per_scene: int = 10,
                            image_size: Tuple[int, int] = (320, 240),
                            depth_size: Optional[Tuple[int, int]] = None,
                            frame_stride: int = 25,
                            invalid_poses_per_scene: int = 0,
                            depth_noise: float = 0.0015,
                            depth_dropout: float = 0.005,
                            max_depth: float = 10.0) -> dict:
    """Write a complete synthetic ScanNet root to ``out_dir`` and return its manifest.

    Args:
        splits: ``[(name, num_scenes), ...]`` or ``'train:6,val:2'``. Scenes are numbered across splits in this
            order (``scene0000_00`` ...). A split named ``test`` gets no annotations, like ScanNet's.
        image_size / depth_size: (width, height) of colour and depth frames; depth defaults to colour's.
        frame_stride: spacing of the ScanNet frame ids (``0.jpg, 25.jpg, ...``).
        invalid_poses_per_scene: frames per scene whose pose file is all ``-inf`` (ScanNet's lost tracking);
            their images are still valid.
        depth_noise: std of the depth noise at 1 m in metres (it grows with depth squared).
        depth_dropout: fraction of depth pixels randomly set to 0 (invalid).

    The folder is built next to ``out_dir`` and swapped in at the end, so readers never see a half-written
    dataset and stale files of an earlier run do not survive. Existing folders are only replaced when they
    were written by this generator.
    """
    split_list = parse_splits(splits) if isinstance(splits, str) else [(str(n), int(c)) for n, c in splits]
    if not split_list or any(c < 1 for _, c in split_list):
        raise ValueError(f'splits must list at least one split with >= 1 scene, got {split_list}')
    for name, value in (('points_per_scene', points_per_scene), ('frame_stride', frame_stride)):
        if value < 1:
            raise ValueError(f'{name} must be >= 1, got {value}')
    if frames_per_scene < 0 or invalid_poses_per_scene < 0:
        raise ValueError('frames_per_scene and invalid_poses_per_scene must be >= 0')
    color_size = tuple(int(x) for x in image_size)
    depth_size = color_size if depth_size is None else tuple(int(x) for x in depth_size)
    for name, size in (('image_size', color_size), ('depth_size', depth_size)):
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f'{name} must be (width, height) with both >= 8, got {size}')
    out_dir = osp.normpath(out_dir)
    _check_output_dir(out_dir)
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix=f'.{osp.basename(out_dir)}.tmp-', dir=parent)
    manifest = dict(generator='projects.sam_mtp.datasets.synthetic', format_version=SYNTHETIC_FORMAT_VERSION,
                    seed=seed, points_per_scene=points_per_scene, frames_per_scene=frames_per_scene,
                    image_size=list(color_size), depth_size=list(depth_size), frame_stride=frame_stride,
                    invalid_poses_per_scene=invalid_poses_per_scene, depth_noise=depth_noise,
                    depth_dropout=depth_dropout, max_depth=max_depth, splits={})
    try:
        index = 0
        for split, count in split_list:
            with_ann = split != 'test'
            data_list, labels = [], []
            for _ in range(count):
                scene = generate_scene(seed, index)
                streams = _scene_streams(seed, index)
                info, nyu40 = _write_scene(tmp_root, scene, streams, points_per_scene, frames_per_scene,
                                           color_size, depth_size, frame_stride, invalid_poses_per_scene,
                                           with_ann, depth_noise, depth_dropout, max_depth)
                data_list.append(info)
                labels.append(nyu40)
                index += 1
            metainfo = dict(categories={c: i for i, c in enumerate(SCANNET_DET_CLASSES)}, dataset='scannet',
                            info_version='1.1')
            blob = pickle.dumps(dict(metainfo=metainfo, data_list=data_list), protocol=pickle.HIGHEST_PROTOCOL)
            _write_bytes(osp.join(tmp_root, f'scannet_infos_{split}.pkl'), blob)
            names = [d['sample_idx'] for d in data_list]
            _write_bytes(osp.join(tmp_root, 'meta_data', f'scannetv2_{split}.txt'),
                         ''.join(n + '\n' for n in names).encode())
            if with_ann:
                os.makedirs(osp.join(tmp_root, 'seg_info'), exist_ok=True)
                np.save(osp.join(tmp_root, 'seg_info', f'{split}_resampled_scene_idxs.npy'),
                        _resampled_scene_idxs([len(x) for x in labels]))
                np.save(osp.join(tmp_root, 'seg_info', f'{split}_label_weight.npy'), _seg_label_weight(labels))
            manifest['splits'][split] = names
            print_log(f'synthetic ScanNet: wrote {count} {split} scenes', logger='current')
        _write_bytes(osp.join(tmp_root, MANIFEST_NAME), (json.dumps(manifest, indent=2, sort_keys=True) + '\n')
                     .encode())
        os.chmod(tmp_root, 0o755)  # mkdtemp makes it private; a dataset folder should be readable
        old = None
        if osp.isdir(out_dir):
            _check_output_dir(out_dir)  # still ours after the (possibly long) generation
            old = tempfile.mkdtemp(prefix=f'.{osp.basename(out_dir)}.old-', dir=parent)
            os.rmdir(old)
            os.replace(out_dir, old)
        os.replace(tmp_root, out_dir)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    return manifest
