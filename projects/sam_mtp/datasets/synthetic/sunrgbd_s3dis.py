"""Seeded synthetic SUN RGB-D and S3DIS samples in mmdet3d's on-disk formats (and Stanford 2D-3D-S frames).

The rooms, the ray caster and the surface sampler are those of the synthetic ScanNet rooms (:mod:`.rooms`,
:mod:`.raycast`, :mod:`.points`); this module only writes them the way mmdet3d's converters write SUN RGB-D and
S3DIS, so the scene-segment tool and the fine-tuning configs can be tested on data of the real formats.

**SUN RGB-D** (``write_synthetic_sunrgbd``), one RGB-D view per sample, as SUN RGB-D's toolbox
(``read3dPoints``) and mmdet3d's converter (``sunrgbd_data_utils.py``, ``update_infos_to_v2.py``) make it::

    points/<idx:06d>.bin                     float32 (N, 6): upright-depth xyz, rgb in [0, 1]
    sunrgbd_trainval/image/<idx:06d>.jpg     the colour image
    sunrgbd_trainval/instance/<idx:06d>.png  uint16 instance ids (the stand-in masks; not part of SUN RGB-D)
    sunrgbd_infos_<split>.pkl                v2 info: images.CAM0.{img_path, height, width, depth2img},
                                             lidar_points, instances (bbox_3d gravity centre + size + yaw)

The toolbox back-projects pixel ``(x, y)`` of ``meshgrid(1:W, 1:H)`` (1-based) with ``K`` to camera points,
writes them as ``[x, z, -y]`` and rotates them upright with ``Rtilt``; ``depth2img = K @ F @ Rtilt.T`` with
``F = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]``. ``calib_form='K.T@R'`` writes the transposed-K form of infos
converted by mmdet3d v0.x instead. :func:`render_sunrgbd_sample` returns every point's source pixel, which is how
the projection is tested.

**S3DIS** (``write_synthetic_s3dis``), one room per sample, as mmdet3d's ``collect_indoor3d_data.py`` makes it
(the room's *aligned* frame shifted to a zero minimum)::

    points/Area_<a>_<room>.bin  float32 (N, 6): xyz, rgb in [0, 255]
    instance_mask/, semantic_mask/ (int64, 13 S3DIS classes), s3dis_infos_Area_<a>.pkl, seg_info/

and optionally the room's frames in the Stanford 2D-3D-S layout (``2d3ds/area_<a>/data/{rgb,depth,pose}``,
``labels/segments/stanford_2d3ds.py``) in an *area* frame that differs from the points' frame by a rotation about z (a
multiple of 90 degrees plus ``extra_yaw_deg``) and a translation, as the real data does, plus stand-in instance
images ``data/instance/<rgb stem>.png``.
"""
import json
import os
import os.path as osp
import pickle
from dataclasses import replace
from typing import Dict

import cv2
import numpy as np

from .cameras import make_camera_poses
from .files import write_bytes, write_image
from .points import sample_scene_points
from .raycast import render_frame
from .rooms import SCANNET_DET_CLASSES, generate_scene, scene_streams

SUNRGBD_CLASSES = ('bed', 'table', 'sofa', 'chair', 'toilet', 'desk', 'dresser', 'night_stand', 'bookshelf',
                   'bathtub')
S3DIS_SEG_CLASSES = ('ceiling', 'floor', 'wall', 'beam', 'column', 'window', 'door', 'table', 'chair', 'sofa',
                     'bookcase', 'board', 'clutter')
S3DIS_DET_CLASSES = ('table', 'chair', 'sofa', 'bookcase', 'board')
DEPTH_TO_CAMERA = np.array([[1., 0., 0.], [0., 0., -1.], [0., 1., 0.]])  # mmdet3d's F
# SUN RGB-D class of each synthetic (ScanNet) class, if any.
_TO_SUNRGBD = dict(bed='bed', table='table', sofa='sofa', chair='chair', toilet='toilet', desk='desk',
                   cabinet='dresser', bookshelf='bookshelf', bathtub='bathtub')
_TO_S3DIS = dict(window='window', door='door', table='table', desk='table', chair='chair', sofa='sofa',
                 bookshelf='bookcase', picture='board')


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.], [s, c, 0.], [0., 0., 1.]])


def _pinhole(width: int, height: int, focal_factor: float) -> np.ndarray:
    """0-based pinhole intrinsics (pixel ``i`` centred on ``i``) with ``fx = fy = focal_factor * width``."""
    return np.array([[focal_factor * width, 0., (width - 1) / 2.], [0., focal_factor * width, (height - 1) / 2.],
                     [0., 0., 1.]])


def _encode_decode_jpg(rgb: np.ndarray, quality: int = 95):
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return buf.tobytes(), np.ascontiguousarray(decoded)


# ---------------------------------------------------------------------------------------------------- SUN RGB-D
def render_sunrgbd_sample(seed: int, index: int, num_points: int = 4000, image_size=(192, 144),
                          focal_factor: float = 0.8, calib_form: str = 'K@R') -> dict:
    """One synthetic SUN RGB-D sample (a pure function of ``seed`` and ``index``).

    Returns ``points`` (N, 6) float32 as written, ``pixel`` (N, 2) int (row, col) 0-based source pixel of each
    point, ``jpg`` bytes and the ``image`` they decode to, ``instance`` (H, W) ids, ``K`` (1-based principal
    point), ``Rtilt``, ``depth2img`` (in ``calib_form``) and ``instances`` (mmdet3d v2 entries).
    """
    if calib_form not in ('K@R', 'K.T@R'):
        raise ValueError(f"calib_form must be 'K@R' or 'K.T@R', got {calib_form!r}")
    scene = generate_scene(seed, index)
    _, cam_rng, point_rng, _ = scene_streams(seed, index)
    width, height = image_size
    k0 = _pinhole(width, height, focal_factor)
    pose = make_camera_poses(scene, 1, cam_rng)[0]                      # camera -> raw frame
    depth, color, instance, _ = render_frame(scene, pose, k0, height, width)
    jpg, image = _encode_decode_jpg(color)
    # The toolbox's calibration: K with 1-based principal point; Rtilt turns [x, z, -y] of the camera upright.
    k_sun = k0.copy()
    k_sun[:2, 2] += 1.0
    cam_to_aligned = scene.axis_align_matrix @ pose
    # Poses are rounded to 6 decimals (ScanNet text files); a calibration's rotation is a rotation. (The points are
    # built in the camera frame, so the rotation used here needs no relation to the render's rounding.)
    u_, _, vt_ = np.linalg.svd(cam_to_aligned[:3, :3])
    r_wc = u_ @ vt_
    forward = r_wc[:, 2].copy()
    forward[2] = 0.0
    y_axis = forward / np.linalg.norm(forward)
    z_axis = np.array([0., 0., 1.])
    r_uw = np.stack([np.cross(y_axis, z_axis), y_axis, z_axis])          # world -> upright (x right, y forward)
    cv_to_depth = np.array([[1., 0., 0.], [0., 0., 1.], [0., -1., 0.]])   # [x, y, z] -> [x, z, -y]
    rtilt = r_uw @ r_wc @ cv_to_depth.T
    # read3dPoints: x3 = (x - cx) * d / fx with x = col + 1 (MATLAB pixels), y3 likewise, [x3 z3 -y3], Rtilt.
    rows, cols = np.nonzero(depth > 0)
    pick = point_rng.choice(len(rows), num_points, replace=len(rows) < num_points)
    rows, cols = rows[pick], cols[pick]
    d = depth[rows, cols].astype(np.float64)
    x3 = (cols + 1 - k_sun[0, 2]) * d / k_sun[0, 0]
    y3 = (rows + 1 - k_sun[1, 2]) * d / k_sun[1, 1]
    upright = np.stack([x3, d, -y3], 1) @ rtilt.T
    points = np.concatenate([upright, image[rows, cols] / 255.0], 1).astype(np.float32)
    k_stored = k_sun.T if calib_form == 'K.T@R' else k_sun
    depth2img = k_stored @ DEPTH_TO_CAMERA @ rtilt.T                        # update_infos_to_v2.py
    # Boxes of the visible objects of a SUN RGB-D class, in the upright frame (gravity centre, size, yaw).
    cam_pos = cam_to_aligned[:3, 3]
    psi = np.arctan2(r_uw[0, 1], r_uw[0, 0])                               # upright x axis angle in the world
    inst_of_point = instance[rows, cols]
    instances = []
    for obj in scene.objects:
        name = _TO_SUNRGBD.get(SCANNET_DET_CLASSES[obj.det_label])
        if name is None or (inst_of_point == obj.instance_id).sum() < 20:
            continue
        centre = r_uw @ (obj.center - cam_pos)
        instances.append(dict(bbox_3d=[*centre.tolist(), *obj.size.tolist(), float(obj.yaw - psi)],
                              bbox_label_3d=SUNRGBD_CLASSES.index(name)))
    return dict(points=points, pixel=np.stack([rows, cols], 1), jpg=jpg, image=image,
                instance=instance.astype(np.uint16), K=k_sun, Rtilt=rtilt, depth2img=depth2img,
                instances=instances, image_hw=(height, width))


def write_synthetic_sunrgbd(out_dir: str, splits: Dict[str, int] = None, seed: int = 0, num_points: int = 4000,
                            image_size=(192, 144), calib_form: str = 'K@R') -> dict:
    """Write synthetic SUN RGB-D samples (``{'train': n, 'val': m}``) under ``out_dir``; returns
    ``{split: [sample names]}``. Sample indices start at 1, as SUN RGB-D's."""
    splits = splits or dict(train=2, val=1)
    index = 1
    names = {}
    for split, count in splits.items():
        data_list = []
        for _ in range(count):
            sample = render_sunrgbd_sample(seed, index, num_points, image_size, calib_form=calib_form)
            name = f'{index:06d}'
            write_bytes(osp.join(out_dir, 'points', f'{name}.bin'), sample['points'].tobytes())
            write_bytes(osp.join(out_dir, 'sunrgbd_trainval', 'image', f'{name}.jpg'), sample['jpg'])
            write_image(osp.join(out_dir, 'sunrgbd_trainval', 'instance', f'{name}.png'), sample['instance'])
            h, w = sample['image_hw']
            data_list.append(dict(
                images=dict(CAM0=dict(img_path=f'{name}.jpg', height=int(h), width=int(w),
                                      depth2img=sample['depth2img'].tolist())),
                lidar_points=dict(num_pts_feats=6, lidar_path=f'{name}.bin'), instances=sample['instances']))
            index += 1
        metainfo = dict(categories={c: i for i, c in enumerate(SUNRGBD_CLASSES)}, dataset='sunrgbd',
                        info_version='1.1')
        write_bytes(osp.join(out_dir, f'sunrgbd_infos_{split}.pkl'),
                     pickle.dumps(dict(metainfo=metainfo, data_list=data_list), protocol=pickle.HIGHEST_PROTOCOL))
        names[split] = [osp.splitext(d['lidar_points']['lidar_path'])[0] for d in data_list]
    return names


# ---------------------------------------------------------------------------------------------------- S3DIS
def _s3dis_semantic(scene, surface: np.ndarray) -> np.ndarray:
    """S3DIS class (0..12) of every point from its surface index (objects, then floor and the four walls)."""
    table = [S3DIS_SEG_CLASSES.index(_TO_S3DIS.get(SCANNET_DET_CLASSES[o.det_label], 'clutter'))
             for o in scene.objects]
    table += [S3DIS_SEG_CLASSES.index('floor')] + [S3DIS_SEG_CLASSES.index('wall')] * (len(scene.room_colors) - 1)
    return np.asarray(table, np.int64)[surface]


def area_transform(seed: int, index: int, extra_yaw_deg: float = 0.0) -> np.ndarray:
    """4x4 map of a synthetic room's aligned frame into its 2D-3D-S area frame: a rotation about z by a multiple
    of 90 degrees (plus ``extra_yaw_deg``) and a translation."""
    rng = np.random.default_rng([seed, index, 2])
    mat = np.eye(4)
    mat[:3, :3] = _rot_z(np.deg2rad(90.0 * rng.integers(4) + extra_yaw_deg))
    mat[:3, 3] = [*rng.uniform(-20, 20, 2), rng.uniform(-0.5, 3.5)]
    return mat


def write_synthetic_s3dis(out_dir: str, rooms: Dict[int, int] = None, seed: int = 0, num_points: int = 20000,
                          frames_per_room: int = 0, image_size: int = 160, extra_yaw_deg: float = 0.0) -> dict:
    """Write synthetic S3DIS rooms (``{area: number of rooms}``) under ``out_dir``; with ``frames_per_room`` also
    their 2D-3D-S frames under ``out_dir/2d3ds``. Returns ``{sample: 4x4 points -> area transform}``."""
    rooms = rooms or {1: 1, 2: 1}
    transforms = {}
    index = 0
    for area, count in rooms.items():
        data_list, labels = [], []
        for r in range(count):
            scene = generate_scene(seed, 1000 + index)
            _, cam_rng, point_rng, frame_rng = scene_streams(seed, 1000 + index)
            room = f'office_{r + 1}'
            sample = f'Area_{area}_{room}'
            pts = sample_scene_points(scene, num_points, point_rng)
            shift = pts['xyz'].min(0)
            xyz = (pts['xyz'] - shift).astype(np.float32)
            write_bytes(osp.join(out_dir, 'points', f'{sample}.bin'),
                         np.concatenate([xyz, pts['rgb'].astype(np.float32)], 1).tobytes())
            semantic = _s3dis_semantic(scene, pts['surface'])
            write_bytes(osp.join(out_dir, 'instance_mask', f'{sample}.bin'),
                         pts['instance'].astype(np.int64).tobytes())
            write_bytes(osp.join(out_dir, 'semantic_mask', f'{sample}.bin'), semantic.tobytes())
            instances = []
            for obj in scene.objects:
                name = _TO_S3DIS.get(SCANNET_DET_CLASSES[obj.det_label])
                mine = xyz[pts['instance'] == obj.instance_id]
                if name in S3DIS_DET_CLASSES and len(mine):
                    lo, hi = mine.min(0), mine.max(0)
                    instances.append(dict(bbox_3d=[*((lo + hi) / 2).tolist(), *(hi - lo).tolist()],
                                          bbox_label_3d=S3DIS_DET_CLASSES.index(name)))
            data_list.append(dict(lidar_points=dict(num_pts_feats=6, lidar_path=f'{sample}.bin'), instances=instances,
                                  pts_semantic_mask_path=f'{sample}.bin', pts_instance_mask_path=f'{sample}.bin'))
            labels.append(semantic)
            aligned_to_area = area_transform(seed, index, extra_yaw_deg)
            shifted = np.eye(4)
            shifted[:3, 3] = shift
            transforms[sample] = aligned_to_area @ shifted                   # mmdet3d points -> area
            if frames_per_room:
                _write_2d3ds_room(osp.join(out_dir, '2d3ds'), area, room, scene, aligned_to_area, frames_per_room,
                                  image_size, cam_rng, frame_rng)
            index += 1
        metainfo = dict(categories={c: i for i, c in enumerate(S3DIS_DET_CLASSES)}, dataset='s3dis',
                        info_version='1.1')
        write_bytes(osp.join(out_dir, f's3dis_infos_Area_{area}.pkl'),
                     pickle.dumps(dict(metainfo=metainfo, data_list=data_list), protocol=pickle.HIGHEST_PROTOCOL))
        os.makedirs(osp.join(out_dir, 'seg_info'), exist_ok=True)
        counts = np.array([len(x) for x in labels], np.float64)
        idxs = np.repeat(np.arange(len(labels)), np.maximum(np.round(counts / 4096), 1).astype(int))
        np.save(osp.join(out_dir, 'seg_info', f'Area_{area}_resampled_scene_idxs.npy'), idxs.astype(np.int32))
        freq = np.bincount(np.concatenate(labels), minlength=len(S3DIS_SEG_CLASSES) + 1) / sum(map(len, labels))
        np.save(osp.join(out_dir, 'seg_info', f'Area_{area}_label_weight.npy'),
                (1.0 / np.log(1.2 + freq)).astype(np.float32))
    return transforms


def _write_2d3ds_room(root: str, area: int, room: str, scene, aligned_to_area: np.ndarray, num_frames: int,
                      size: int, cam_rng, frame_rng) -> None:
    """Posed frames of one room in the 2D-3D-S layout (poses in the area frame)."""
    area_scene = replace(scene, axis_align_matrix=np.linalg.inv(aligned_to_area))  # "raw" frame = area frame
    k = _pinhole(size, size, 0.6)
    data = osp.join(root, f'area_{area}', 'data')
    for j, pose in enumerate(make_camera_poses(area_scene, num_frames, cam_rng)):
        uuid = f'{int(frame_rng.integers(1 << 62)):016x}'
        base = f'camera_{uuid}_{room}_frame_{j}_domain_'
        depth, color, instance, _ = render_frame(area_scene, pose, k, size, size)
        raw = np.where(depth > 0, np.round(depth * 512.0), 65535).astype(np.uint16)
        write_image(osp.join(data, 'rgb', base + 'rgb.png'), cv2.cvtColor(color, cv2.COLOR_RGB2BGR))
        write_image(osp.join(data, 'depth', base + 'depth.png'), raw)
        write_image(osp.join(data, 'instance', base + 'rgb.png'), instance.astype(np.uint16))
        rt = np.linalg.inv(pose)[:3]
        meta = dict(camera_k_matrix=k.tolist(), camera_rt_matrix=rt.tolist(), camera_location=pose[:3, 3].tolist(),
                    camera_uuid=uuid, frame_num=j, room=f'{room}_{area}', field_of_view_rads=2 * np.arctan(1 / 1.2))
        write_bytes(osp.join(data, 'pose', base + 'pose.json'), json.dumps(meta).encode())
