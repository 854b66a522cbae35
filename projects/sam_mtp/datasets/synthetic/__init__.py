"""Seeded synthetic indoor scenes written in ScanNet's real on-disk formats.

There is no ScanNet in CI, so this package builds small rooms (floor, four walls, 3-8 furniture primitives of the
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

Modules, by concern: :mod:`.rooms` (classes, primitives, room generation, shading), :mod:`.raycast` (ray caster,
frame rendering), :mod:`.points` (surface point sampling), :mod:`.cameras` (intrinsics, camera loops),
:mod:`.scannet_writer` (the ScanNet root), :mod:`.scannet_meta` (meta-file readers), :mod:`.sunrgbd_s3dis` (the same
rooms as SUN RGB-D / S3DIS / 2D-3D-S samples) and :mod:`.files` (file writers). The names below are the public ones.
"""
from .cameras import make_camera_poses, scannet_like_intrinsic
from .points import points_inside_objects, sample_scene_points
from .raycast import cast_rays, render_frame, surface_normals
from .rooms import (
                    CLASS_COLORS,
                    NYU40_FLOOR,
                    NYU40_WALL,
                    ROOM_SURFACES,
                    SCANNET_DET_CLASSES,
                    SCANNET_DET_NYU40_IDS,
                    SCANNET_SEG_NYU40_IDS,
                    Primitive,
                    SyntheticScene,
                    generate_scene,
                    scene_name,
                    surface_color,
)
from .scannet_meta import load_axis_align_matrix, read_scannet_meta
from .scannet_writer import MANIFEST_NAME, SYNTHETIC_FORMAT_VERSION, parse_splits, write_synthetic_scannet
from .sunrgbd_s3dis import (
                    DEPTH_TO_CAMERA,
                    S3DIS_DET_CLASSES,
                    S3DIS_SEG_CLASSES,
                    SUNRGBD_CLASSES,
                    area_transform,
                    render_sunrgbd_sample,
                    write_synthetic_s3dis,
                    write_synthetic_sunrgbd,
)

__all__ = [
    'CLASS_COLORS', 'DEPTH_TO_CAMERA', 'MANIFEST_NAME', 'NYU40_FLOOR', 'NYU40_WALL', 'ROOM_SURFACES',
    'S3DIS_DET_CLASSES', 'S3DIS_SEG_CLASSES', 'SCANNET_DET_CLASSES', 'SCANNET_DET_NYU40_IDS', 'SCANNET_SEG_NYU40_IDS',
    'SUNRGBD_CLASSES', 'SYNTHETIC_FORMAT_VERSION', 'Primitive', 'SyntheticScene', 'area_transform', 'cast_rays',
    'generate_scene', 'load_axis_align_matrix', 'make_camera_poses', 'parse_splits', 'points_inside_objects',
    'read_scannet_meta', 'render_frame', 'render_sunrgbd_sample', 'sample_scene_points', 'scannet_like_intrinsic',
    'scene_name', 'surface_color', 'surface_normals', 'write_synthetic_s3dis', 'write_synthetic_scannet',
    'write_synthetic_sunrgbd'
]
