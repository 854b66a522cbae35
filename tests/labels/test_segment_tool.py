"""tools/make_scene_segments.py on SUN RGB-D and S3DIS data of mmdet3d's formats (synthetic samples, and mmdet3d's
own real SUN RGB-D sample with a tiny random SAM): outputs against the ground truth the samples were made from,
resuming, bad input, the geometric fallback, and LoadSceneSegments on the files."""
import importlib.util
import os
import pickle
import shutil

import numpy as np
import pytest

from projects.sam_mtp.datasets.synthetic import render_sunrgbd_sample, write_synthetic_s3dis, write_synthetic_sunrgbd
from projects.sam_mtp.labels import make_sunrgbd_segments
from projects.sam_mtp.labels.formats.scene_segments import read_segment_meta

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, 'tests', 'data', 'mmdet3d')
SEGMENT_CONFIGS = os.path.join(ROOT, 'configs', 'sam_mtp', 'segments')
STAND_IN = dict(type='InstanceImageMaskSource', folder='instance')


def _tool():
    spec = importlib.util.spec_from_file_location('make_scene_segments', os.path.join(ROOT, 'tools',
                                                                                        'make_scene_segments.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stand_in_config(tmp_path, base: str, extra: str = '') -> str:
    """A copy of a shipped segments config whose SAM is replaced by the instance-image stand-in."""
    path = tmp_path / f'stand_in_{base}'
    path.write_text(f"_base_ = [{os.path.join(SEGMENT_CONFIGS, base)!r}]\n"
                    f"mask_source = dict(_delete_=True, type='InstanceImageMaskSource', folder='instance')\n{extra}")
    return str(path)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings group the points identically (a bijection between their ids)."""
    pairs = np.unique(np.stack([a, b], 1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


def _purity(labels, truth):
    seen = labels >= 0
    return sum(np.bincount(truth[labels == s]).max() for s in np.unique(labels[seen])) / max(seen.sum(), 1)


@pytest.fixture(scope='module')
def sun_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('sunrgbd') / 'sunrgbd')
    write_synthetic_sunrgbd(root, dict(train=2, val=1), seed=0, num_points=1500, image_size=(96, 72))
    return root


def test_sunrgbd_segments_are_the_instances_under_the_points(sun_root, tmp_path):
    tool = _tool()
    cfg = _stand_in_config(tmp_path, 'sunrgbd_sam.py')
    infos = [os.path.join(sun_root, f'sunrgbd_infos_{s}.pkl') for s in ('train', 'val')]
    args = [cfg, '--data-root', sun_root, '--info', *infos, '--no-progress']
    assert tool.main(args) == 0
    for index in (1, 2, 3):
        name = f'{index:06d}'
        labels = np.fromfile(os.path.join(sun_root, 'scene_segments', f'{name}.bin'), np.int64)
        sample = render_sunrgbd_sample(0, index, 1500, (96, 72))
        truth = sample['instance'][sample['pixel'][:, 0], sample['pixel'][:, 1]].astype(np.int64)
        assert len(labels) == 1500 and (labels >= 0).all()  # every point came from a pixel of some surface
        assert _same_partition(labels, truth)
        meta = read_segment_meta(os.path.join(sun_root, 'scene_segments', f'{name}.bin'))
        assert meta['method'] == 'sam_single_image' and meta['sam'] is True
        assert meta['calibration_form'] == 'K@R' and meta['in_image_fraction'] == 1.0
        assert meta['num_segments'] == len(np.unique(truth))
    # A rerun skips the finished samples.
    assert tool.main(args) == 0
    import json
    with open(os.path.join(sun_root, 'scene_segments', '_work', 'shard-0-of-1.json')) as f:
        report = json.load(f)
    assert report['written'] == 0 and report['already_finished'] == 3


def test_shards_split_the_samples_by_name_and_together_give_the_single_run(sun_root, tmp_path, monkeypatch):
    import json
    import zlib
    tool = _tool()
    cfg = _stand_in_config(tmp_path, 'sunrgbd_sam.py')
    infos = [os.path.join(sun_root, f'sunrgbd_infos_{s}.pkl') for s in ('train', 'val')]
    names = ['000001', '000002', '000003']

    def run(out, *extra):
        return tool.main([cfg, '--data-root', sun_root, '--info', *infos, '--no-progress',
                          '--segments-dir', str(out), *extra])

    assert run(tmp_path / 'single') == 0
    sharded = tmp_path / 'sharded'
    owners = {n: zlib.crc32(n.encode()) % 3 for n in names}  # the owner follows the name, not the listing order
    assert len(set(owners.values())) >= 2  # these names do split (shards 1 and 2; shard 0 gets none)
    # three shards: two by --shard, the last as torchrun's rank 2 of 3
    for index in (0, 1):
        assert run(sharded, '--shard', f'{index}/3') == 0
        mine = {n for n, o in owners.items() if o <= index}
        assert {n for n in names if (sharded / f'{n}.bin').exists()} == mine  # nothing of a later shard
    monkeypatch.setenv('RANK', '2')
    monkeypatch.setenv('WORLD_SIZE', '3')
    assert run(sharded, '--launcher', 'pytorch') == 0
    for index in range(3):
        with open(sharded / '_work' / f'shard-{index}-of-3.json') as f:
            report = json.load(f)
        assert report['num_samples'] == report['written'] == sum(o == index for o in owners.values())
    for name in names:
        single = (tmp_path / 'single' / f'{name}.bin').read_bytes()
        assert (sharded / f'{name}.bin').read_bytes() == single
    # --shard and a launcher together, or a shard out of range: refused before any sample
    assert run(tmp_path / 'refused', '--shard', '0/3', '--launcher', 'pytorch') == 1
    assert run(tmp_path / 'refused', '--shard', '3/3') == 1
    assert not (tmp_path / 'refused').exists()


def test_custom_dataset_with_cam2img_lidar2cam_or_lidar2img_runs_end_to_end(sun_root, tmp_path):
    """docs/finetune.md "Custom data": an mmdet3d-format dataset whose info gives a 0-based cam2img with lidar2cam
    (train) or one lidar2img (val) under its own camera name, run with a copy of sunrgbd_sam.py."""
    root = tmp_path / 'custom'
    shutil.copytree(sun_root, root, ignore=shutil.ignore_patterns('scene_segments'))
    # depth frame (x right, y forward, z up) -> OpenCV camera (x right, y down, z forward), written out here
    depth_to_opencv = np.array([[1., 0., 0.], [0., 0., -1.], [0., 1., 0.]])
    forms = dict(train='cam2img + lidar2cam', val='lidar2img')
    for split, form in forms.items():
        path = root / f'sunrgbd_infos_{split}.pkl'
        with open(path, 'rb') as f:
            info = pickle.load(f)
        for entry in info['data_list']:
            index = int(os.path.splitext(os.path.basename(entry['lidar_points']['lidar_path']))[0])
            sample = render_sunrgbd_sample(0, index, 1500, (96, 72))
            cam2img = np.eye(4)
            cam2img[:3, :3] = sample['K']
            cam2img[:2, 2] -= 1.0  # SUN RGB-D's 1-based principal point -> 0-based
            lidar2cam = np.eye(4)
            lidar2cam[:3, :3] = depth_to_opencv @ sample['Rtilt'].T
            old = entry['images'].pop('CAM0')
            new = dict(img_path=old['img_path'], height=old['height'], width=old['width'])
            if split == 'train':
                new.update(cam2img=cam2img.tolist(), lidar2cam=lidar2cam.tolist())
            else:
                new['lidar2img'] = (cam2img @ lidar2cam).tolist()
            entry['images'] = dict(CAM_FRONT=new)
        with open(path, 'wb') as f:
            pickle.dump(info, f)
    cfg = _stand_in_config(tmp_path, 'sunrgbd_sam.py', "segment_cfg = dict(camera='CAM_FRONT', pixel_origin=0)\n")
    infos = [str(root / f'sunrgbd_infos_{s}.pkl') for s in ('train', 'val')]
    assert _tool().main([cfg, '--data-root', str(root), '--info', *infos, '--no-progress']) == 0
    for index, split in ((1, 'train'), (2, 'train'), (3, 'val')):
        name = f'{index:06d}'
        labels = np.fromfile(root / 'scene_segments' / f'{name}.bin', np.int64)
        sample = render_sunrgbd_sample(0, index, 1500, (96, 72))
        truth = sample['instance'][sample['pixel'][:, 0], sample['pixel'][:, 1]].astype(np.int64)
        assert (labels >= 0).all() and _same_partition(labels, truth), name
        meta = read_segment_meta(str(root / 'scene_segments' / f'{name}.bin'))
        assert meta['calibration_form'] == {'train': 'cam2img@lidar2cam', 'val': 'lidar2img'}[split]
        assert meta['in_image_fraction'] == 1.0
    # With SUN RGB-D's 1-based origin on these 0-based calibrations every point is read one pixel off.
    off = _stand_in_config(tmp_path, 'sunrgbd_sam.py', "segment_cfg = dict(camera='CAM_FRONT', pixel_origin=1)\n")
    assert _tool().main([off, '--data-root', str(root), '--info', *infos, '--no-progress',
                         '--segments-dir', str(tmp_path / 'off')]) == 0
    sample = render_sunrgbd_sample(0, 1, 1500, (96, 72))
    truth = sample['instance'][sample['pixel'][:, 0], sample['pixel'][:, 1]].astype(np.int64)
    assert not _same_partition(np.fromfile(tmp_path / 'off' / '000001.bin', np.int64), truth)


def test_sunrgbd_bad_input_is_counted_with_the_sample_named(sun_root, tmp_path):
    root = str(tmp_path / 'sun')
    shutil.copytree(sun_root, root, ignore=shutil.ignore_patterns('scene_segments'))
    info_path = os.path.join(root, 'sunrgbd_infos_train.pkl')
    with open(info_path, 'rb') as f:
        info = pickle.load(f)
    info['data_list'][0]['images']['CAM0']['depth2img'] = np.zeros((3, 3)).tolist()    # 000001: singular
    with open(info_path, 'wb') as f:
        pickle.dump(info, f)
    os.remove(os.path.join(root, 'sunrgbd_trainval', 'image', '000002.jpg'))            # 000002: no image
    infos = [info_path, os.path.join(root, 'sunrgbd_infos_val.pkl')]
    report = make_sunrgbd_segments(root, infos, STAND_IN, progress=False, max_failure_fraction=0.9)
    kinds = {f['sample']: (f['kind'], f['message']) for f in report['failures']}
    assert kinds['000001'][0] == 'bad_calibration' and kinds['000001'][1].startswith('000001: depth2img')
    assert 'singular' in kinds['000001'][1]
    assert kinds['000002'][0] == 'missing_image' and '000002.jpg' in kinds['000002'][1]
    assert report['written'] == 1 and abs(report['failure_fraction'] - 2 / 3) < 1e-9
    # The tool's exit status follows the failure budget.
    tool = _tool()
    cfg = _stand_in_config(tmp_path, 'sunrgbd_sam.py')
    assert tool.main([cfg, '--data-root', root, '--info', *infos, '--no-progress']) == 1
    assert tool.main([cfg, '--data-root', root, '--info', *infos, '--no-progress',
                      '--max-failure-fraction', '0.7']) == 0
    # With the geometric fallback the sample without an image gets segments that say they are not SAM's.
    assert tool.main([cfg, '--data-root', root, '--info', *infos, '--no-progress', '--fallback-geometric',
                      '--max-failure-fraction', '0.5']) == 0
    meta = read_segment_meta(os.path.join(root, 'scene_segments', '000002.bin'))
    assert meta['method'] == 'geometric' and meta['sam'] is False and '000002.jpg' in meta['fallback_reason']
    # The info's image size must be the image's.
    valid = info['data_list'][1]['images']['CAM0']['depth2img']
    info['data_list'][0]['images']['CAM0'].update(height=71, depth2img=valid)
    with open(info_path, 'wb') as f:
        pickle.dump(info, f)
    report = make_sunrgbd_segments(root, infos, STAND_IN, progress=False, max_failure_fraction=1.0)
    messages = {f['sample']: f['message'] for f in report['failures']}
    assert messages['000001'] == '000001: ' + os.path.join(root, 'sunrgbd_trainval', 'image', '000001.jpg') + \
        ' is 72x96 but its info says 71x96 (H x W)'
    # ... and a SAM run does not silently replace the fallback's geometric segments.
    assert "was made by method 'geometric'" in messages['000002'] and '--overwrite' in messages['000002']


def test_real_mmdet3d_sunrgbd_sample_with_a_tiny_random_sam(tmp_path, tiny_sam_checkpoint):
    """mmdet3d's real demo sample through the tool with segment-anything's own generator (tiny random weights)."""
    from projects.sam_mtp.testing import tiny_sam_source_cfg
    root = str(tmp_path / 'sunrgbd')
    shutil.copytree(os.path.join(FIXTURES, 'sunrgbd_demo'), root)
    # SAM on the 530x730 image at half size: the region map is looked up at the scaled pixel
    report = make_sunrgbd_segments(root, [os.path.join(root, 'sunrgbd_infos.pkl')],
                                   tiny_sam_source_cfg(tiny_sam_checkpoint), dict(mask_size=(265, 365)),
                                   progress=False)
    assert report['written'] == 1 and not report['failures']
    labels = np.fromfile(os.path.join(root, 'scene_segments', '000017.bin'), np.int64)
    meta = read_segment_meta(os.path.join(root, 'scene_segments', '000017.bin'))
    assert len(labels) == meta['num_points'] == 2000 and meta['in_image_fraction'] == 1.0
    assert meta['num_segments'] == len(np.unique(labels[labels >= 0])) and meta['calibration_form'] == 'K@R'
    assert report['timings']['000017']['model_seconds'] > 0


@pytest.fixture(scope='module')
def s3dis_root(tmp_path_factory):
    """Areas 1 and 2, one room each, with 2D-3D-S frames for Area 1 only; the Area 1 room is off the area frame
    by a rotation about z of a multiple of 90 degrees plus 3 degrees and a translation."""
    root = str(tmp_path_factory.mktemp('s3dis') / 's3dis')
    transforms = write_synthetic_s3dis(root, {1: 1, 2: 1}, seed=0, num_points=6000, frames_per_room=5,
                                       image_size=96, extra_yaw_deg=3.0)
    shutil.rmtree(os.path.join(root, '2d3ds', 'area_2'))
    return root, transforms


def test_s3dis_rooms_are_registered_to_their_2d3ds_frames_with_a_geometric_fallback(s3dis_root, tmp_path):
    root, transforms = s3dis_root
    tool = _tool()
    small = dict(mask_size=(96, 96), registration=dict(max_points=3000, frame_points=20000, icp_iterations=15))
    cfg = _stand_in_config(tmp_path, 's3dis_2d3ds_sam.py', f"segment_cfg = {small!r}\n")
    infos = [os.path.join(root, f's3dis_infos_Area_{a}.pkl') for a in (1, 2)]
    args = [cfg, '--data-root', root, '--info', *infos, '--images-root', os.path.join(root, '2d3ds'),
            '--no-progress', '--segments-dir', str(tmp_path / 'segs')]
    assert tool.main(args) == 1  # Area_2_office_1 has no frames: a counted failure over the 5 % budget
    assert tool.main(args + ['--fallback-geometric']) == 0
    sam = read_segment_meta(str(tmp_path / 'segs' / 'Area_1_office_1.bin'))
    assert sam['method'] == 'sam_multi_view' and sam['sam'] is True and sam['views_used'] == 5
    estimated = np.array(sam['registration']['transform'])
    true = transforms['Area_1_office_1']
    assert np.abs(estimated[:3, 3] - true[:3, 3]).max() < 0.02  # metres
    assert abs(sam['registration']['yaw_deg'] - np.degrees(np.arctan2(true[1, 0], true[0, 0]))) < 0.3
    assert sam['registration']['fitness'] > 0.9 > max(v for k, v in sam['registration']['candidates'].items()
                                                      if float(k) != sam['registration']['initial_angle_deg'])
    labels = np.fromfile(str(tmp_path / 'segs' / 'Area_1_office_1.bin'), np.int64)
    truth = np.fromfile(os.path.join(root, 'instance_mask', 'Area_1_office_1.bin'), np.int64)
    assert (labels >= 0).mean() > 0.3 and _purity(labels, truth) > 0.95
    geo = read_segment_meta(str(tmp_path / 'segs' / 'Area_2_office_1.bin'))
    assert geo['method'] == 'geometric' and geo['sam'] is False
    assert 'no 2D-3D-S frames of this room' in geo['fallback_reason']
    # The fallback is geometric; a plain SAM rerun (same SAM settings) refuses to mix it up with SAM segments.
    from projects.sam_mtp.labels import make_s3dis_segments
    report = make_s3dis_segments(root, infos, os.path.join(root, '2d3ds'), STAND_IN, small, progress=False,
                                 segments_dir=str(tmp_path / 'segs'), max_failure_fraction=1.0)
    assert [f['kind'] for f in report['failures']] == ['method_mismatch']


def test_load_scene_segments_refuses_a_wrong_length_and_flags_geometric_files(s3dis_root, tmp_path, monkeypatch):
    import torch
    from mmdet3d.structures import DepthPoints

    import projects.sam_mtp.datasets.scene_segments as module
    from projects.sam_mtp.datasets.scene_segments import LoadSceneSegments
    from projects.sam_mtp.labels.formats.scene_segments import save_scene_segments
    seg_dir = tmp_path / 'scene_segments'
    save_scene_segments(str(seg_dir / 'room.bin'), np.arange(10), dict(method='geometric'))
    logged = []
    monkeypatch.setattr(module, 'print_log', lambda msg, **kw: logged.append((msg, kw.get('level'))))
    monkeypatch.setattr(LoadSceneSegments, '_described_folders', set())
    results = dict(points=DepthPoints(torch.rand(10, 3), points_dim=3), lidar_points=dict(lidar_path='points/room.bin'))
    out = LoadSceneSegments(segment_dir=str(seg_dir))(results)
    assert out['points'].tensor.shape == (10, 4)
    assert len(logged) == 1 and 'NOT SAM' in logged[0][0] and logged[0][1] == 30  # logging.WARNING, once
    LoadSceneSegments(segment_dir=str(seg_dir))(dict(results, points=DepthPoints(torch.rand(10, 3), points_dim=3)))
    assert len(logged) == 1
    short = dict(points=DepthPoints(torch.rand(12, 3), points_dim=3), lidar_points=dict(lidar_path='points/room.bin'))
    with pytest.raises(ValueError, match=r'room\.bin: has 10 segment ids but the scene has 12 points'):
        LoadSceneSegments(segment_dir=str(seg_dir))(short)


@pytest.mark.parametrize('name', sorted(n for n in os.listdir(SEGMENT_CONFIGS) if n.endswith('.py')))
def test_shipped_segment_configs_validate(name):
    from mmengine.config import Config

    from projects.sam_mtp.labels.segments.segmenters import SAM_SOURCES, merge_source_cfg
    cfg = Config.fromfile(os.path.join(SEGMENT_CONFIGS, name))
    settings = merge_source_cfg(cfg.segment_cfg.to_dict())  # unknown keys would raise
    assert ('mask_source' in cfg) == (settings['source'] in SAM_SOURCES)
    if settings['source'] == 'geometric':
        assert 'NOT SAM' in open(os.path.join(SEGMENT_CONFIGS, name)).read()
