"""ScenePointCountHook: a dataset whose scenes hold far more points than the recipe assumes (mmdet3d's full-mesh
ScanNet export under 3DETR's 50k-point recipe) is reported once, naming the largest scene and its count."""
import logging
import os.path as osp
import pickle
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

import projects.sam_mtp  # noqa: F401  (registers the hook)
from projects.sam_mtp.datasets import point_count

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURE = osp.join(REPO, 'tests', 'data', 'mmdet3d', 'scannet')
LOAD_DIM = 6  # mmdet3d's ScanNet points: xyz + rgb, float32

init_default_scope('mmdet3d')


def _write_scannet(root, points_per_scene):
    """mmdet3d's ScanNet fixture with one scene per entry of ``points_per_scene`` (name -> point count)."""
    shutil.copytree(FIXTURE, root)
    with open(osp.join(root, 'scannet_infos.pkl'), 'rb') as f:
        infos = pickle.load(f)
    template = infos['data_list'][0]
    rng = np.random.default_rng(0)
    data_list = []
    for name, count in points_per_scene.items():
        rng.random((count, LOAD_DIM), dtype=np.float32).tofile(osp.join(root, 'points', f'{name}.bin'))
        entry = pickle.loads(pickle.dumps(template))
        entry['lidar_points']['lidar_path'] = f'{name}.bin'
        data_list.append(entry)
    infos['data_list'] = data_list
    with open(osp.join(root, 'scannet_infos_train.pkl'), 'wb') as f:
        pickle.dump(infos, f)


def _dataset(root, load_dim=LOAD_DIM, repeat=False):
    from mmdet3d.registry import DATASETS
    dataset = dict(type='ScanNetDataset', data_root=root, ann_file='scannet_infos_train.pkl',
                   pipeline=[dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=load_dim,
                                  use_dim=[0, 1, 2])],
                   box_type_3d='Depth')
    return DATASETS.build(dict(type='RepeatDataset', times=5, dataset=dataset) if repeat else dataset)


@pytest.fixture
def logged(monkeypatch):
    messages = []
    monkeypatch.setattr(point_count, 'print_log', lambda msg, **kw: messages.append((msg, kw.get('level'))))
    return messages


def test_counts_are_the_points_of_each_file(tmp_path):
    root = str(tmp_path / 'scannet')
    _write_scannet(root, {'scene0001_00': 30, 'scene0002_00': 250})
    counts = {osp.basename(path): n for path, n in point_count.scene_point_counts(_dataset(root))}
    expected = {name: np.fromfile(osp.join(root, 'points', name), np.float32).reshape(-1, LOAD_DIM).shape[0]
                for name in ('scene0001_00.bin', 'scene0002_00.bin')}
    assert counts == expected == {'scene0001_00.bin': 30, 'scene0002_00.bin': 250}


def test_denser_scenes_warn_once_per_dataset_naming_the_largest(tmp_path, logged):
    root = str(tmp_path / 'scannet')
    _write_scannet(root, {'scene0001_00': 90, 'scene0002_00': 300, 'scene0003_00': 101, 'scene0004_00': 100})
    hook = point_count.ScenePointCountHook(expected_points=50, max_ratio=2.0)
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=_dataset(root, repeat=True)))
    hook.before_train(runner)
    assert len(logged) == 1 and logged[0][1] == logging.WARNING
    message = logged[0][0]
    # 300 and 101 exceed 2 x 50; 100 does not (the limit is "more than").
    assert 'scene scene0002_00 has 300 points' in message and '2 scene(s) over 100' in message, message
    assert 'scannet_infos_train.pkl' in message
    hook.before_train(runner)  # the same dataset again (every epoch, every validation): no second warning
    assert len(logged) == 1


def test_the_limit_is_max_ratio_times_the_expected_count(tmp_path, logged):
    root = str(tmp_path / 'scannet')
    _write_scannet(root, {'scene0001_00': 100})
    point_count.ScenePointCountHook(expected_points=50, max_ratio=2.0).check(_dataset(root))
    assert logged == []  # exactly 2x: not over
    point_count.ScenePointCountHook(expected_points=60, max_ratio=1.5).check(_dataset(root))
    assert len(logged) == 1 and 'has 100 points' in logged[0][0] and 'over 90' in logged[0][0]


def test_hint_and_bad_settings(tmp_path, logged):
    root = str(tmp_path / 'scannet')
    _write_scannet(root, {'scene0001_00': 100})
    point_count.ScenePointCountHook(expected_points=10, hint='re-export it').check(_dataset(root))
    assert logged[0][0].endswith('re-export it')
    with pytest.raises(ValueError, match='expected_points'):
        point_count.ScenePointCountHook(expected_points=0)


def test_3detr_configs_state_their_50k_points():
    """The 3DETR recipes (ScanNet, SUN RGB-D, their SAM-MTP rows) carry the check with VoteNet's 50k points."""
    for rel in ('configs/sam_mtp/benchmarks/threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py',
                'configs/sam_mtp/benchmarks/threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py',
                'configs/sam_mtp/benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py'):
        hooks = [h for h in Config.fromfile(osp.join(REPO, rel)).custom_hooks if h['type'] == 'ScenePointCountHook']
        assert len(hooks) == 1 and hooks[0]['expected_points'] == 50000 and hooks[0]['max_ratio'] == 2.0, rel
