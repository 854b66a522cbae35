"""Synthetic ScanNet generator: geometry agrees across points / depth / masks, and mmdet3d reads it unchanged."""
import glob
import hashlib
import importlib.util
import os
import os.path as osp
import pickle

import cv2
import numpy as np
import pytest
from scipy.spatial import cKDTree

from projects.sam_mtp.datasets.synthetic import (
    MANIFEST_NAME,
    SCANNET_DET_CLASSES,
    SCANNET_DET_NYU40_IDS,
    SCANNET_SEG_NYU40_IDS,
    Primitive,
    SyntheticScene,
    cast_rays,
    generate_scene,
    make_camera_poses,
    parse_splits,
    points_inside_objects,
    render_frame,
    sample_scene_points,
    scannet_like_intrinsic,
    write_synthetic_scannet,
)
from projects.sam_mtp.labels.formats.frames import load_axis_align_matrix

SEED = 3
COLOR_WH = (80, 60)
DEPTH_WH = (64, 48)
FRAMES = 4
STRIDE = 25


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('synthetic') / 'scannet')
    # dense points so that a surface point's nearest scene point is ~1.5 cm away
    write_synthetic_scannet(out, splits='train:2,val:1', seed=SEED, points_per_scene=60000,
                            frames_per_scene=FRAMES, image_size=COLOR_WH, depth_size=DEPTH_WH,
                            frame_stride=STRIDE, invalid_poses_per_scene=1)
    return out


def _infos(root, split):
    with open(osp.join(root, f'scannet_infos_{split}.pkl'), 'rb') as f:
        return pickle.load(f)


def _all_entries(root):
    return [e for split in ('train', 'val') for e in _infos(root, split)['data_list']]


def _scene_arrays(root, sid):
    cloud = np.fromfile(osp.join(root, 'points', f'{sid}.bin'), dtype=np.float32).reshape(-1, 6)
    inst = np.fromfile(osp.join(root, 'instance_mask', f'{sid}.bin'), dtype=np.int64)
    sem = np.fromfile(osp.join(root, 'semantic_mask', f'{sid}.bin'), dtype=np.int64)
    return cloud, inst, sem


def _align(points, mat):
    return points @ mat[:3, :3].T + mat[:3, 3]


def _frames(root, sid):
    """(frame id, 4x4 raw pose) of every frame, -inf poses included."""
    out = []
    for path in glob.glob(osp.join(root, 'posed_images', sid, 'pose', '*.txt')):
        out.append((int(osp.basename(path)[:-4]), np.loadtxt(path)))
    return sorted(out, key=lambda x: x[0])


def _backproject(depth_mm, k, pose):
    """Valid depth pixels -> (M, 3) world points and their (row, col)."""
    rows, cols = np.nonzero(depth_mm > 0)
    z = depth_mm[rows, cols].astype(np.float64) / 1000.0
    cam = np.stack([(cols - k[0, 2]) * z / k[0, 0], (rows - k[1, 2]) * z / k[1, 1], z, np.ones_like(z)], -1)
    return (cam @ pose.T)[:, :3], rows, cols


def _project(points, k, pose, width, height):
    """World points -> integer pixel (row, col), camera depth and in-image mask."""
    cam = np.c_[points, np.ones(len(points))] @ np.linalg.inv(pose).T
    z = cam[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        col = np.round(cam[:, 0] / z * k[0, 0] + k[0, 2])
        row = np.round(cam[:, 1] / z * k[1, 1] + k[1, 2])
    ok = (z > 0.1) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    return np.where(ok, row, 0).astype(int), np.where(ok, col, 0).astype(int), z, ok


# ------------------------------------------------------------------------------------------------ layout
def test_layout_follows_scannet_and_mmdet3d(root):
    infos = _infos(root, 'train')
    assert infos['metainfo']['dataset'] == 'scannet'
    assert infos['metainfo']['categories'] == {c: i for i, c in enumerate(SCANNET_DET_CLASSES)}
    assert [e['sample_idx'] for e in infos['data_list']] == ['scene0000_00', 'scene0001_00']
    assert [e['sample_idx'] for e in _infos(root, 'val')['data_list']] == ['scene0002_00']
    assert open(osp.join(root, 'meta_data', 'scannetv2_val.txt')).read() == 'scene0002_00\n'
    for e in _all_entries(root):
        sid = e['sample_idx']
        assert e['lidar_points'] == dict(num_pts_feats=6, lidar_path=f'{sid}.bin')
        assert e['pts_instance_mask_path'] == e['pts_semantic_mask_path'] == f'{sid}.bin'
        cloud, inst, sem = _scene_arrays(root, sid)
        assert len(cloud) == len(inst) == len(sem) == 60000
        rgb = cloud[:, 3:]
        assert rgb.min() >= 0 and rgb.max() <= 255 and (rgb == np.round(rgb)).all()
        assert inst.min() >= 1 and set(np.unique(sem)) <= set(SCANNET_SEG_NYU40_IDS)
        # a rotation about z by a clearly non-right angle, plus a translation; z row/column exact
        mat = np.array(e['axis_align_matrix'])
        angle = np.degrees(np.arctan2(mat[1, 0], mat[0, 0])) % 90
        assert 10 < angle < 80 and np.linalg.norm(mat[:2, 3]) > 0.01
        assert (mat[2, :3] == [0, 0, 1]).all() and (mat[:3, 2] == [0, 0, 1]).all()
        np.testing.assert_array_equal(load_axis_align_matrix(osp.join(root, 'scans', sid, f'{sid}.txt')), mat)
        frame_dir = osp.join(root, 'posed_images', sid)
        for name, wh in (('color', COLOR_WH), ('depth', DEPTH_WH)):
            k = np.loadtxt(osp.join(frame_dir, 'intrinsic', f'intrinsic_{name}.txt'))
            assert k.shape == (4, 4) and k[0, 2] == (wh[0] - 1) / 2 and k[1, 2] == (wh[1] - 1) / 2
            np.testing.assert_array_equal(np.loadtxt(osp.join(frame_dir, 'intrinsic', f'extrinsic_{name}.txt')),
                                          np.eye(4))
        frames = _frames(root, sid)
        assert [f for f, _ in frames] == [i * STRIDE for i in range(FRAMES)]
        assert sum(np.isneginf(p).all() for _, p in frames) == 1  # the lost-tracking defect
        assert sum(np.isfinite(p).all() for _, p in frames) == FRAMES - 1
        for fid, _ in frames:
            color = cv2.imread(osp.join(frame_dir, 'color', f'{fid}.jpg'), cv2.IMREAD_UNCHANGED)
            depth = cv2.imread(osp.join(frame_dir, 'depth', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            instance = cv2.imread(osp.join(frame_dir, 'instance', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            label = cv2.imread(osp.join(frame_dir, 'label', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            assert color.shape == (COLOR_WH[1], COLOR_WH[0], 3) and color.dtype == np.uint8
            assert depth.shape == DEPTH_WH[::-1] and depth.dtype == np.uint16
            assert instance.shape == label.shape == COLOR_WH[::-1] and instance.dtype == label.dtype == np.uint16
            assert 0.3 < (depth > 0).mean() and depth.max() < 10000
            assert set(np.unique(label)) <= set(SCANNET_SEG_NYU40_IDS) | {0}
    for split in ('train', 'val'):
        idxs = np.load(osp.join(root, 'seg_info', f'{split}_resampled_scene_idxs.npy'))
        n = len(_infos(root, split)['data_list'])
        assert idxs.dtype == np.int32 and set(idxs.tolist()) == set(range(n))
        weights = np.load(osp.join(root, 'seg_info', f'{split}_label_weight.npy'))
        assert weights.shape == (21, ) and np.isfinite(weights).all() and (weights > 0).all()


# ------------------------------------------------------------------------------------------------ geometry
def test_depth_backprojects_onto_scene_points(root):
    medians = []
    for e in _all_entries(root):
        sid, mat = e['sample_idx'], np.array(e['axis_align_matrix'])
        cloud = _scene_arrays(root, sid)[0]
        tree = cKDTree(_align(cloud[:, :3].astype(np.float64), mat))
        k = np.loadtxt(osp.join(root, 'posed_images', sid, 'intrinsic', 'intrinsic_depth.txt'))
        for fid, pose in _frames(root, sid):
            if not np.isfinite(pose).all():
                continue
            depth = cv2.imread(osp.join(root, 'posed_images', sid, 'depth', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            world, rows, cols = _backproject(depth, k, pose)
            dist, _ = tree.query(_align(world, mat))  # raw -> aligned, as GlobalAlignment does
            medians.append(np.median(dist))
            # 60k points leave ~2 cm between neighbours (5 cm at the 99th percentile); add three sigmas of the
            # sensor-like depth noise (0.0015 m at 1 m, growing with z^2)
            z = depth[rows, cols] / 1000.0
            assert (dist < 0.05 + 3 * 0.0015 * z**2).mean() > 0.97, (sid, fid)
    assert len(medians) == 3 * (FRAMES - 1)
    assert max(medians) < 0.03


def test_instance_and_label_images_match_nearest_scene_point(root):
    agree_inst, agree_label, total = 0, 0, 0
    for e in _all_entries(root):
        sid = e['sample_idx']
        cloud, inst, sem = _scene_arrays(root, sid)
        tree = cKDTree(cloud[:, :3].astype(np.float64))  # raw frame, like the poses
        folder = osp.join(root, 'posed_images', sid)
        k_d = np.loadtxt(osp.join(folder, 'intrinsic', 'intrinsic_depth.txt'))
        k_c = np.loadtxt(osp.join(folder, 'intrinsic', 'intrinsic_color.txt'))
        for fid, pose in _frames(root, sid):
            if not np.isfinite(pose).all():
                continue
            depth = cv2.imread(osp.join(folder, 'depth', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            instance = cv2.imread(osp.join(folder, 'instance', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            label = cv2.imread(osp.join(folder, 'label', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            world, _, _ = _backproject(depth, k_d, pose)
            row, col, _, ok = _project(world, k_c, pose, *COLOR_WH)
            dist, nearest = tree.query(world)
            sel = ok & (dist < 0.02)
            agree_inst += (instance[row[sel], col[sel]] == inst[nearest[sel]]).sum()
            agree_label += (label[row[sel], col[sel]] == sem[nearest[sel]]).sum()
            total += sel.sum()
    assert total > 3000
    # only pixels on object outlines may disagree
    assert agree_inst / total > 0.95 and agree_label / total > 0.95


def test_objects_occlude_each_other(root):
    hidden = visible = 0
    for e in _all_entries(root):
        sid = e['sample_idx']
        cloud, inst, _ = _scene_arrays(root, sid)
        num_objects = len(e['instances'])
        folder = osp.join(root, 'posed_images', sid)
        k_d = np.loadtxt(osp.join(folder, 'intrinsic', 'intrinsic_depth.txt'))
        k_c = np.loadtxt(osp.join(folder, 'intrinsic', 'intrinsic_color.txt'))
        obj = inst <= num_objects
        points, point_inst = cloud[obj, :3].astype(np.float64), inst[obj]
        for fid, pose in _frames(root, sid):
            if not np.isfinite(pose).all():
                continue
            depth = cv2.imread(osp.join(folder, 'depth', f'{fid}.png'), cv2.IMREAD_UNCHANGED) / 1000.0
            instance = cv2.imread(osp.join(folder, 'instance', f'{fid}.png'), cv2.IMREAD_UNCHANGED)
            rc, cc, _, ok_c = _project(points, k_c, pose, *COLOR_WH)
            rd, cd, z, ok_d = _project(points, k_d, pose, *DEPTH_WH)
            ok = ok_c & ok_d
            seen = instance[rc, cc]
            other_object = ok & (seen != point_inst) & (seen >= 1) & (seen <= num_objects)
            in_front = (depth[rd, cd] > 0) & (depth[rd, cd] < z - 0.1)
            hidden += (other_object & in_front).sum()
            visible += (ok & (seen == point_inst)).sum()
    assert hidden > 50 and visible > 500


def test_boxes_are_tight_around_instance_points_in_aligned_frame(root):
    for e in _all_entries(root):
        cloud, inst, sem = _scene_arrays(root, e['sample_idx'])
        aligned = _align(cloud[:, :3].astype(np.float64), np.array(e['axis_align_matrix']))
        assert 3 <= len(e['instances']) <= 8
        for k, ins in enumerate(e['instances']):
            mine = inst == k + 1  # instances[k] <-> instance id k + 1
            assert mine.sum() > 20
            box = np.array(ins['bbox_3d'])
            lo, hi = box[:3] - box[3:] / 2, box[:3] + box[3:] / 2
            np.testing.assert_allclose(aligned[mine].min(0), lo, atol=1e-6)
            np.testing.assert_allclose(aligned[mine].max(0), hi, atol=1e-6)
            assert 0 <= ins['bbox_label_3d'] < 18
            assert (sem[mine] == SCANNET_DET_NYU40_IDS[ins['bbox_label_3d']]).all()
        # walls and floor are instances too (as in ScanNet) but get no box; aligned, they lie on axis planes
        assert set(np.unique(sem[inst > len(e['instances'])])) == {1, 2}
        for structure in np.unique(inst[inst > len(e['instances'])]):
            spread = aligned[inst == structure].std(0)
            assert spread.min() < 1e-4 and (sem[inst == structure][0] == 2) == (spread.argmin() == 2)
        # without the alignment the boxes would not fit: raw points of an object escape its box
        raw = cloud[:, :3].astype(np.float64)
        box = np.array(e['instances'][0]['bbox_3d'])
        assert (np.abs(raw[inst == 1] - box[:3]) > box[3:] / 2 + 0.01).any()


def _single_box_scene(kind='box', yaw=0.0):
    obj = Primitive(kind, np.array([3.0, 2.0, 0.5]), np.array([1.0, 0.6, 1.0]), yaw, 1, 5, 2,
                    np.array([200.0, 30.0, 30.0]))
    if kind == 'cylinder':
        obj.size = np.array([0.8, 0.8, 1.0])
    return SyntheticScene('scene0000_00', np.array([6.0, 4.0, 2.5]), [obj], np.eye(4), np.arange(2, 7),
                          np.full((5, 3), 128.0))


@pytest.mark.parametrize('kind', ['box', 'cylinder'])
def test_render_frame_matches_analytic_depth(kind):
    scene = _single_box_scene(kind)
    # camera at x = 0.5 looking along +x at the object's middle height
    pose = np.array([[0, 0, 1, 0.5], [-1, 0, 0, 2.0], [0, -1, 0, 0.5], [0, 0, 0, 1.0]])
    k = scannet_like_intrinsic(41, 31)
    depth, color, instance, label = render_frame(scene, pose, k, 31, 41)
    front = 3.0 - (0.5 if kind == 'box' else 0.4)
    assert depth[15, 20] == pytest.approx(front - 0.5, abs=1e-5)
    assert instance[15, 20] == 1 and label[15, 20] == 5
    # beside the object the far wall x = 6 (instance 4: floor 2, wall y=0 3, wall x=max 4) is 5.5 m deep
    assert instance[15, 12] == 4 and label[15, 12] == 1 and depth[15, 12] == pytest.approx(5.5, abs=1e-5)
    # above the object the ray leaves through the open top: no depth, no instance
    assert depth[0, 20] == 0 and instance[0, 20] == 0 and label[0, 20] == 0
    assert tuple(color[15, 20]) != tuple(color[15, 12])


def test_ray_hits_are_nearest_surfaces():
    """Brute-force check of the ray caster: hit points lie on their surface and nothing is in between."""
    scene = generate_scene(SEED, 5)
    rng = np.random.default_rng(0)
    pose = make_camera_poses(scene, 1, rng)[0]
    c2a = scene.axis_align_matrix @ pose
    dirs = rng.normal(size=(3000, 3))
    t, surface = cast_rays(scene, c2a[:3, 3], dirs)
    hit = surface >= 0
    assert hit.mean() > 0.5 and (surface[~hit] == -1).all()
    # points just before the hit along each ray are never inside any object
    fractions = np.linspace(0.02, 0.98, 25)
    between = c2a[:3, 3] + (fractions[:, None, None] * t[hit][None, :, None]) * dirs[hit][None]
    inside = points_inside_objects(scene, between.reshape(-1, 3), tol=-1e-3)
    assert not inside.any()
    # the hit points are on their object's boundary: inside with +tol, outside with -tol
    end = c2a[:3, 3] + t[hit, None] * dirs[hit]
    obj = surface[hit] < len(scene.objects)
    rows = np.flatnonzero(obj)
    assert points_inside_objects(scene, end[obj], tol=1e-3)[np.arange(len(rows)), surface[hit][obj]].all()
    assert not points_inside_objects(scene, end[obj], tol=-1e-3)[np.arange(len(rows)), surface[hit][obj]].any()
    room = end[~obj]
    on_plane = np.minimum(np.abs(room), np.abs(room - scene.room_size)).min(-1)
    assert on_plane.max() < 1e-4


def test_points_lie_on_visible_surfaces():
    scene = generate_scene(SEED, 1)
    pts = sample_scene_points(scene, 5000, np.random.default_rng(1))
    assert len(pts['xyz']) == 5000
    inside = points_inside_objects(scene, pts['xyz'], tol=-1e-3)
    assert not inside.any()  # no point is buried inside furniture
    # no floor point under furniture, no furniture bottom
    floor = pts['xyz'][pts['nyu40'] == 2]
    lifted = floor + [0.0, 0.0, 0.01]  # 1 cm above the floor, 5 mm inside a footprint counts as covered
    assert not points_inside_objects(scene, lifted, tol=-5e-3).any()
    assert len(floor) > 500
    assert (pts['xyz'][pts['instance'] <= len(scene.objects), 2] > 1e-3).all()


# ------------------------------------------------------------------------------------------------ determinism
def _digest(folder):
    out = {}
    for path in sorted(glob.glob(osp.join(folder, '**', '*'), recursive=True)):
        if osp.isfile(path):
            with open(path, 'rb') as f:
                out[osp.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    kwargs = dict(splits='train:1,val:1', points_per_scene=2000, frames_per_scene=2, image_size=(32, 24),
                  invalid_poses_per_scene=1)
    a, b, c = (str(tmp_path / n) for n in 'abc')
    write_synthetic_scannet(a, seed=7, **kwargs)
    write_synthetic_scannet(b, seed=7, **kwargs)
    write_synthetic_scannet(c, seed=8, **kwargs)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert len(da) > 20 and da == db
    assert da.keys() == dc.keys()
    differs = [k for k in da if da[k] != dc[k]]
    assert 'points/scene0000_00.bin' in differs and 'posed_images/scene0001_00/depth/25.png' in differs


def test_rewrite_replaces_own_output_and_refuses_foreign_folders(tmp_path):
    out = str(tmp_path / 'scannet')
    kwargs = dict(seed=0, points_per_scene=500, frames_per_scene=1, image_size=(16, 12))
    write_synthetic_scannet(out, splits='train:2', **kwargs)
    assert osp.isdir(osp.join(out, 'posed_images', 'scene0001_00'))
    write_synthetic_scannet(out, splits='train:1', **kwargs)
    assert not osp.exists(osp.join(out, 'points', 'scene0001_00.bin'))  # no stale scene
    assert not [p for p in os.listdir(tmp_path) if p != 'scannet']  # no temporary folder left
    foreign = tmp_path / 'real_scannet'
    foreign.mkdir()
    (foreign / 'scannet_infos_train.pkl').write_bytes(b'')
    with pytest.raises(FileExistsError, match=f'no {MANIFEST_NAME}'):
        write_synthetic_scannet(str(foreign), splits='train:1', **kwargs)
    assert os.listdir(foreign) == ['scannet_infos_train.pkl']


def test_test_split_has_no_annotations(tmp_path):
    out = str(tmp_path / 'scannet')
    write_synthetic_scannet(out, splits='train:1,test:1', points_per_scene=500, frames_per_scene=0)
    (entry, ) = _infos(out, 'test')['data_list']
    assert entry['instances'] == [] and 'axis_align_matrix' not in entry
    assert not osp.exists(osp.join(out, 'semantic_mask', 'scene0001_00.bin'))
    np.testing.assert_array_equal(load_axis_align_matrix(osp.join(out, 'scans', 'scene0001_00',
                                                                  'scene0001_00.txt')), np.eye(4))


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_reported(tmp_path):
    scene = _single_box_scene()
    k = scannet_like_intrinsic(8, 8)
    with pytest.raises(ValueError, match='not finite'):
        render_frame(scene, np.full((4, 4), -np.inf), k, 8, 8)
    outside = np.eye(4)
    outside[:3, 3] = [-1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match='outside the room'):
        render_frame(scene, outside, k, 8, 8)
    with pytest.raises(ValueError, match='3x3 or 4x4'):
        render_frame(scene, np.eye(4), np.eye(2), 8, 8)
    for text in ('train', 'train:0', 'train:2,train:1', 'train:x'):
        with pytest.raises(ValueError, match='split'):
            parse_splits(text)
    assert parse_splits('train:6, val:2') == [('train', 6), ('val', 2)]
    meta = tmp_path / 'scene.txt'
    meta.write_text('axisAlignment = 1 0 0\n')
    with pytest.raises(ValueError, match='scene.txt: axisAlignment must have 16 numbers'):
        load_axis_align_matrix(str(meta))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_axis_align_matrix(str(tmp_path / 'missing.txt'))
    with pytest.raises(ValueError, match='seed'):
        generate_scene(-1, 0)


def test_tool_command_line(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'make_synthetic_data', osp.join(osp.dirname(__file__), '..', '..', 'tools', 'make_synthetic_data.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.resolve_splits(None, None) == [('train', 6), ('val', 2)]
    assert tool.resolve_splits(None, 4) == [('train', 3), ('val', 1)]
    with pytest.raises(ValueError, match='disagrees'):
        tool.resolve_splits([('train', 2)], 3)
    out = str(tmp_path / 'demo')
    manifest = tool.main(['--out', out, '--num-scenes', '2', '--seed', '1', '--points-per-scene', '300',
                          '--frames-per-scene', '2', '--image-size', '24x16', '--depth-size', '12x8',
                          '--invalid-poses', '1'])
    assert manifest['splits'] == {'train': ['scene0000_00'], 'val': ['scene0001_00']}
    depth = cv2.imread(osp.join(out, 'posed_images', 'scene0001_00', 'depth', '25.png'), cv2.IMREAD_UNCHANGED)
    assert depth.shape == (8, 12)
    with pytest.raises(SystemExit):
        tool.parse_args(['--image-size', '24by16'])


# ------------------------------------------------------------------------------------------------ mmdet3d
def _stock_cfg(name):
    from mmengine.config import Config
    spec = importlib.util.find_spec('mmdet3d')
    path = osp.join(osp.dirname(spec.origin), '.mim', 'configs', '_base_', 'datasets', name)
    if not osp.isfile(path):  # source checkouts keep the configs beside the package
        path = osp.join(osp.dirname(osp.dirname(spec.origin)), 'configs', '_base_', 'datasets', name)
    return Config.fromfile(path)


def test_mmdet3d_scannet_dataset_loads_with_stock_pipelines(root):
    from mmdet3d.datasets import ScanNetDataset
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    cfg = _stock_cfg('scannet-3d.py')
    np.random.seed(0)
    ds = ScanNetDataset(data_root=root, ann_file='scannet_infos_train.pkl', pipeline=cfg.train_pipeline,
                        metainfo=cfg.metainfo, filter_empty_gt=False, box_type_3d='Depth')
    assert len(ds) == 2
    for idx in range(len(ds)):
        raw_instances = ds.get_data_info(idx)['instances']
        sample = ds[idx]
        points = sample['inputs']['points'].numpy()
        gt = sample['data_samples'].gt_instances_3d
        inst = sample['data_samples'].gt_pts_seg.pts_instance_mask
        inst = inst.numpy() if hasattr(inst, 'numpy') else np.asarray(inst)
        assert points.shape == (40000, 4)  # xyz + height, PointSample with replacement
        assert len(gt.bboxes_3d) == len(raw_instances)
        assert gt.labels_3d.tolist() == [i['bbox_label_3d'] for i in raw_instances]
        corners = gt.bboxes_3d.corners.numpy()
        for k in range(len(raw_instances)):
            mine = points[inst == k + 1, :3]
            assert len(mine) > 0
            # after GlobalAlignment and the random flip / rotation, the boxes still hold their points
            assert (mine >= corners[k].min(0) - 1e-3).all() and (mine <= corners[k].max(0) + 1e-3).all()
    test_ds = ScanNetDataset(data_root=root, ann_file='scannet_infos_val.pkl', pipeline=cfg.test_pipeline,
                             metainfo=cfg.metainfo, test_mode=True, box_type_3d='Depth')
    sample = test_ds[0]
    assert sample['inputs']['points'].shape == (40000, 4)
    assert len(test_ds.get_data_info(0)['eval_ann_info']['gt_bboxes_3d']) == len(
        _infos(root, 'val')['data_list'][0]['instances'])


def test_mmdet3d_scannet_seg_dataset_loads_with_stock_pipelines(root):
    from mmdet3d.datasets import ScanNetSegDataset
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    cfg = _stock_cfg('scannet-seg.py')
    common = dict(data_root=root, metainfo=cfg.metainfo, data_prefix=cfg.data_prefix, modality=cfg.input_modality,
                  ignore_index=len(cfg.class_names))
    np.random.seed(0)
    ds = ScanNetSegDataset(ann_file='scannet_infos_train.pkl', pipeline=cfg.train_pipeline,
                           scene_idxs='seg_info/train_resampled_scene_idxs.npy', **common)
    sample = ds[0]
    points = sample['inputs']['points'].numpy()
    mask = sample['data_samples'].gt_pts_seg.pts_semantic_mask
    mask = mask.numpy() if hasattr(mask, 'numpy') else np.asarray(mask)
    assert points.shape == (8192, 6) and mask.shape == (8192, )
    assert mask.min() >= 0 and mask.max() < 20  # every synthetic point has one of the 20 classes
    test_ds = ScanNetSegDataset(ann_file='scannet_infos_val.pkl', pipeline=cfg.test_pipeline, test_mode=True,
                                **common)
    sample = test_ds[0]
    cloud, _, sem = _scene_arrays(root, 'scene0002_00')
    np.testing.assert_allclose(sample['inputs']['points'][:, :3].numpy(), cloud[:, :3])
    # the evaluator gets the raw NYU40 mask of every point
    np.testing.assert_array_equal(sample['data_samples'].eval_ann_info['pts_semantic_mask'], sem)
    # and maps it to the 20 classes with the same table as ours: walls 0, floor 1, objects 2..19
    lut = np.full(41, 20)
    lut[list(SCANNET_SEG_NYU40_IDS)] = np.arange(20)
    np.testing.assert_array_equal(test_ds.seg_label_mapping[sem], lut[sem])
    assert set(lut[sem]) >= {0, 1} and max(lut[sem]) < 20
