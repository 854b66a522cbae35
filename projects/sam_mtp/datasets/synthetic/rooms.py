"""Rooms of the synthetic scenes: furniture primitives of ScanNet's 18 detection classes placed in a room of the
aligned frame, the raw-to-aligned map, the random streams of a scene, and the shading that the sampled points and the
rendered images share (so that their colours agree).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

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


def scene_streams(seed: int, scene_index: int, n: int = 4) -> List[np.random.Generator]:
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
        if any(w == wall and lo < high + 0.1 and low < hi + 0.1 for w, low, high in wall_spans):
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
    rng = scene_streams(seed, scene_index)[0]
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
