"""A synthetic ScanNet root in ScanNet's real on-disk formats: mmdet3d's layout (points, masks, v2 infos,
``seg_info/``), the SensReader-style frame export (``posed_images/``) and the per-scan meta files (``scans/``).
"""
import json
import os
import os.path as osp
import pickle
import shutil
import tempfile
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.logging import print_log

from projects.sam_mtp.labels.formats.frames import FrameExportWriter

from .cameras import make_camera_poses, scannet_like_intrinsic
from .files import write_bytes, write_image
from .points import sample_scene_points
from .raycast import render_frame
from .rooms import SCANNET_DET_CLASSES, SCANNET_SEG_NYU40_IDS, SyntheticScene, generate_scene, scene_streams

SYNTHETIC_FORMAT_VERSION = 1
MANIFEST_NAME = 'synthetic_info.json'


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
    write_bytes(osp.join(root, 'points', f'{sid}.bin'), cloud.astype(np.float32).tobytes())
    info = dict(sample_idx=sid, lidar_points=dict(num_pts_feats=6, lidar_path=f'{sid}.bin'), instances=[])
    if with_annotations:
        write_bytes(osp.join(root, 'instance_mask', f'{sid}.bin'), pts['instance'].astype(np.int64).tobytes())
        write_bytes(osp.join(root, 'semantic_mask', f'{sid}.bin'), pts['nyu40'].astype(np.int64).tobytes())
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
    write_bytes(osp.join(root, 'scans', sid, f'{sid}.txt'), meta_text.encode())
    if frames_per_scene:
        frame_dir = osp.join(root, 'posed_images', sid)
        # '%f' matrices like ScanNet's exporter; plain writes (the whole root is made in a temporary folder)
        frames = FrameExportWriter(frame_dir, write_bytes=write_bytes, number_format='f', jpeg_quality=92)
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
            write_image(osp.join(frame_dir, 'instance', f'{fid}.png'), instance.astype(np.uint16))
            write_image(osp.join(frame_dir, 'label', f'{fid}.png'), label.astype(np.uint16))
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
                streams = scene_streams(seed, index)
                info, nyu40 = _write_scene(tmp_root, scene, streams, points_per_scene, frames_per_scene,
                                           color_size, depth_size, frame_stride, invalid_poses_per_scene,
                                           with_ann, depth_noise, depth_dropout, max_depth)
                data_list.append(info)
                labels.append(nyu40)
                index += 1
            metainfo = dict(categories={c: i for i, c in enumerate(SCANNET_DET_CLASSES)}, dataset='scannet',
                            info_version='1.1')
            blob = pickle.dumps(dict(metainfo=metainfo, data_list=data_list), protocol=pickle.HIGHEST_PROTOCOL)
            write_bytes(osp.join(tmp_root, f'scannet_infos_{split}.pkl'), blob)
            names = [d['sample_idx'] for d in data_list]
            write_bytes(osp.join(tmp_root, 'meta_data', f'scannetv2_{split}.txt'),
                         ''.join(n + '\n' for n in names).encode())
            if with_ann:
                os.makedirs(osp.join(tmp_root, 'seg_info'), exist_ok=True)
                np.save(osp.join(tmp_root, 'seg_info', f'{split}_resampled_scene_idxs.npy'),
                        _resampled_scene_idxs([len(x) for x in labels]))
                np.save(osp.join(tmp_root, 'seg_info', f'{split}_label_weight.npy'), _seg_label_weight(labels))
            manifest['splits'][split] = names
            print_log(f'synthetic ScanNet: wrote {count} {split} scenes', logger='current')
        write_bytes(osp.join(tmp_root, MANIFEST_NAME), (json.dumps(manifest, indent=2, sort_keys=True) + '\n')
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
