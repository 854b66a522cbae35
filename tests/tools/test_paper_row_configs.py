"""Every config of a paper row (Table 1: 3DETR and GroupFree3D on ScanNetV2 and SUN RGB-D, baseline / "+ Plain
Transformer" / "+ Ours"; Table 2: the segmentor on ScanNetV2 and S3DIS, scratch / "+ Ours"; Tables 3/4: the
kNN-token fine-tuning configs of the rows without SAM-guided tokens; the "+Point-MAE" configs whose model is not
one of those) trains one iteration with tools/train.py and is evaluated by tools/test.py on mmdet3d's real-format
fixtures, so a config that cannot train is caught here and not by a user.

The configs run unchanged except for sample counts (points per scene or patch, segmentation test patches) and
loader/epoch settings given as --cfg-options, as a user would pass them; every layer keeps its size. Both tools run
in this process (``main(argv)``) to save interpreter and import time. The SAM-token configs read scene segments
made by tools/make_scene_segments.py's geometric over-segmentation (the fixtures carry no posed frames; the
SAM paths of the tool are tested in tests/labels/test_segment_*.py and tests/tools/test_segments_finetune.py) and a
randomly initialised full-size stage-2 checkpoint at the configs' default path.
"""
import functools
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.config.utils import _get_cfg_metainfo as _UNCACHED_CFG_METAINFO

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURES = osp.join(REPO, 'tests', 'data', 'mmdet3d')
# pretrained_checkpoint of configs/sam_mtp/_base_/models/sam-mtp-point-backbone.py
PRETRAINED = 'work_dirs/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames/epoch_120.pth'
# the *-sam-mtp-knn-tokens configs' (same encoder weights)
PRETRAINED_KNN = 'work_dirs/sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames/epoch_120.pth'
# point_mae_checkpoint of configs/sam_mtp/_base_/models/sam-mtp-point-backbone.py: the "+Point-MAE" configs'
PRETRAINED_POINT_MAE = 'work_dirs/point-mae_plain-transformer_8xb8-120e_scannet-frames/epoch_120.pth'


def _mmdet3d_config(rel):
    import mmdet3d
    return osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'configs', rel)


# (config, dataset, task): paper row in the comment.
B, A = 'configs/sam_mtp/benchmarks/', 'configs/sam_mtp/ablations/'
ROWS = [
    (B + 'threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py', 'scannet', 'det'),  # T1 3DETR
    (B + 'threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py', 'sunrgbd', 'det'),  # T1 3DETR
    (B + 'threedetr_plain-transformer_1xb8-1080e_scannet-3d.py', 'scannet', 'det'),  # T1 3DETR + Plain T.
    (B + 'threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py', 'sunrgbd', 'det'),  # T1 3DETR + Plain T.
    (B + 'threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py', 'scannet', 'det'),  # T1 3DETR + Ours
    (B + 'threedetr_plain-transformer-sam-mtp_1xb8-1080e_sunrgbd-3d.py', 'sunrgbd', 'det'),  # T1 3DETR + Ours
    (A + 'threedetr_plain-transformer-sam-mtp-knn-tokens_1xb8-1080e_scannet-3d.py', 'scannet', 'det'),  # T3 rows 2-4
    ('mmdet3d:groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py', 'scannet', 'det'),  # T1 GroupFree3D
    (B + 'groupfree3d_pointnet2-ssg_4xb8-80e_sunrgbd-3d.py', 'sunrgbd', 'det'),  # T1 GroupFree3D
    # T1 GroupFree3D + Plain T.
    (B + 'groupfree3d_plain-transformer-sam-tokens_4xb8-80e_scannet-3d.py', 'scannet', 'det'),
    # T1 GroupFree3D + Plain T.
    (B + 'groupfree3d_plain-transformer-sam-tokens_4xb8-80e_sunrgbd-3d.py', 'sunrgbd', 'det'),
    (B + 'groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py', 'scannet', 'det'),  # T1 GroupFree3D + Ours
    # T1 GroupFree3D + Ours, written as the backbone swap into mmdet3d's own config (docs/finetune.md)
    (B + 'groupfree3d_plain-transformer-sam-mtp-swap_4xb8-80e_scannet-3d.py', 'scannet', 'det'),
    (B + 'groupfree3d_plain-transformer-sam-mtp_4xb8-80e_sunrgbd-3d.py', 'sunrgbd', 'det'),  # T1 GroupFree3D + Ours
    # T2 Plain Transformer
    (B + 'tokeninterp_plain-transformer-sam-tokens_2xb16-200e_scannet-seg.py', 'scannet', 'seg'),
    (B + 'tokeninterp_plain-transformer-sam-tokens_2xb16-50e_s3dis-seg.py', 's3dis', 'seg'),  # T2 Plain Transformer
    (B + 'tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py', 'scannet', 'seg'),  # T2 + Ours
    (B + 'tokeninterp_plain-transformer-sam-mtp_2xb16-50e_s3dis-seg.py', 's3dis', 'seg'),  # T2 + Ours
    (A + 'tokeninterp_plain-transformer-sam-mtp-knn-tokens_2xb16-50e_s3dis-seg.py', 's3dis', 'seg'),  # T3 rows 2-4
    # The rival rows whose model is new here: GroupFree3D and the ScanNet segmentor on FPS/kNN tokens. The other
    # "+Point-MAE" configs are configs above with a checkpoint, the "+Bridge3D" ones "+Point-MAE" ones with another
    # (tests/models/test_paper_rows.py compares them key by key).
    (B + 'groupfree3d_plain-transformer-point-mae_4xb8-80e_scannet-3d.py', 'scannet', 'det'),  # T1 GroupFree3D + P-MAE
    (B + 'groupfree3d_plain-transformer-point-mae_4xb8-80e_sunrgbd-3d.py', 'sunrgbd', 'det'),  # T1 GroupFree3D + P-MAE
    (B + 'tokeninterp_plain-transformer-point-mae_2xb16-200e_scannet-seg.py', 'scannet', 'seg'),  # T2 + Point-MAE
]

# Sample counts for CPU (every layer keeps its size): points per detection scene / segmentation patch (the fixtures
# hold 100), and the numbers of tokens, queries and proposals the models sample.
DET_POINTS, SEG_POINTS = 512, 256
SAMPLE_COUNTS = {
    'ThreeDETREncoder': dict(num_points=64, num_samples=16),
    'ThreeDETRHead': dict(num_queries=32),
    'FPSKNNTokenizer': dict(num_tokens=64, num_points_per_token=16),
    'SAMGuidedTokenizer': dict(num_points_per_token=16, max_tokens=32, max_fallback_tokens=16),
    'SamMtpPointBackbone': dict(num_output_tokens=64),  # only where the config fixes it (GroupFree3D, segmentor)
    'PointNet2SASSG': dict(num_points=(256, 128, 64, 32)),
    'GroupFree3DHead': dict(num_proposal=32),
    'RotatedBoxGroupFree3DHead': dict(num_proposal=32),
}


@functools.lru_cache(maxsize=None)
def _cached_cfg_metainfo(package_path, cfg_path):
    return _UNCACHED_CFG_METAINFO(package_path, cfg_path)


def _config_path(entry):
    return _mmdet3d_config(entry.split(':', 1)[1]) if entry.startswith('mmdet3d:') else osp.join(REPO, entry)


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f'sam_mtp_tool_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_fixtures(root):
    """mmdet3d's fixtures under the file names the configs read (one sample serves every split and area)."""
    for dataset in ('scannet', 'sunrgbd', 's3dis'):
        shutil.copytree(osp.join(FIXTURES, dataset), osp.join(root, 'data', dataset))
    scannet, sunrgbd, s3dis = (osp.join(root, 'data', d) for d in ('scannet', 'sunrgbd', 's3dis'))
    for split in ('train', 'val'):
        shutil.copy(osp.join(scannet, 'scannet_infos.pkl'), osp.join(scannet, f'scannet_infos_{split}.pkl'))
        shutil.copy(osp.join(sunrgbd, 'sunrgbd_infos.pkl'), osp.join(sunrgbd, f'sunrgbd_infos_{split}.pkl'))
    os.makedirs(osp.join(scannet, 'seg_info'))
    np.save(osp.join(scannet, 'seg_info', 'train_resampled_scene_idxs.npy'), np.zeros(1, np.int32))
    os.makedirs(osp.join(s3dis, 'seg_info'))
    for area in range(1, 7):
        shutil.copy(osp.join(s3dis, 's3dis_infos.pkl'), osp.join(s3dis, f's3dis_infos_Area_{area}.pkl'))
        # One training patch per area file, so the train loop runs once; mmdet3d's config lists five areas.
        np.save(osp.join(s3dis, 'seg_info', f'Area_{area}_resampled_scene_idxs.npy'), np.zeros(1, np.int32))
    from projects.sam_mtp.labels import make_geometric_segments
    # The fixtures hold 100 points each: voxels and segments sized so that a few segments and unassigned points exist.
    tiny = dict(voxel_size=0.1, normal_knn=8, graph_knn=4, min_segment_voxels=4)
    for data_root, info in ((scannet, 'scannet_infos.pkl'), (sunrgbd, 'sunrgbd_infos.pkl'),
                            (s3dis, 's3dis_infos.pkl')):
        report = make_geometric_segments(data_root, [osp.join(data_root, info)], tiny, progress=False)
        assert not report['failures'], report
        assert len(glob.glob(osp.join(data_root, 'scene_segments', '*.bin'))) == 1


def _write_stage2_checkpoint(path):
    """A randomly initialised model of the stage-2 config saved as the stage-2 tool saves it."""
    from mmdet3d.registry import MODELS
    torch.manual_seed(0)
    stage2 = 'configs/sam_mtp/pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py'
    model = MODELS.build(Config.fromfile(osp.join(REPO, stage2)).model)
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=120)), path)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    from mmengine.registry import init_default_scope

    import projects.sam_mtp  # noqa: F401
    init_default_scope('mmdet3d')
    ws = tmp_path_factory.mktemp('paper_rows')
    _write_fixtures(str(ws))
    _write_stage2_checkpoint(str(ws / PRETRAINED))
    for copy in (PRETRAINED_KNN, PRETRAINED_POINT_MAE):
        os.makedirs(osp.dirname(ws / copy))
        shutil.copy(ws / PRETRAINED, ws / copy)
    return ws


def _pipelines(cfg):
    """(option prefix, pipeline) of the train and test loaders, through a RepeatDataset wrapper."""
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset, prefix = cfg[loader]['dataset'], f'{loader}.dataset'
        if 'pipeline' not in dataset:
            dataset, prefix = dataset['dataset'], prefix + '.dataset'
        yield prefix + '.pipeline', dataset['pipeline']


def _options(cfg, task):
    """--cfg-options: one epoch of one iteration, no workers, no validation during training, small samples."""
    # No validation loop in training (tools/test.py evaluates), no optimizer state in the checkpoint.
    options = ['train_cfg.max_epochs=1', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
               'randomness.seed=0', 'default_hooks.checkpoint.save_optimizer=False']
    for loader in ('train_dataloader', 'test_dataloader'):
        options += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    if cfg.train_dataloader.dataset.type == 'RepeatDataset':
        options.append('train_dataloader.dataset.times=1')
    for path, part in (('model.backbone', cfg.model.backbone), ('model.backbone.tokenizer',
                                                                   cfg.model.backbone.get('tokenizer')),
                       ('model.bbox_head', cfg.model.get('bbox_head'))):
        for key, value in SAMPLE_COUNTS.get((part or {}).get('type'), {}).items():
            if key in part or key != 'num_output_tokens':
                options.append(f'{path}.{key}={value}'.replace(' ', ''))
    for prefix, pipeline in _pipelines(cfg):
        for i, transform in enumerate(pipeline):
            if transform['type'] in ('PointSample', 'IndoorPatchPointSample'):
                options.append(f'{prefix}.{i}.num_points={DET_POINTS if task == "det" else SEG_POINTS}')
    if task == 'seg':  # sliding-window test: points per patch as in training
        options += [f'model.test_cfg.num_points={SEG_POINTS}', 'model.test_cfg.batch_size=8']
    return options


def _metrics(work_dir):
    files = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert files, f'tools/test.py wrote no metrics under {work_dir}'
    with open(files[0]) as f:
        return json.load(f)


@pytest.mark.parametrize('entry,dataset,task', ROWS, ids=[osp.basename(r[0]) for r in ROWS])
def test_paper_row_config_trains_and_tests(workspace, entry, dataset, task, monkeypatch):
    monkeypatch.chdir(workspace)
    # Speed only, results unchanged: mmengine formats every config it logs or dumps with yapf (about half of a
    # run's CPU time at these sizes), re-reads all of mmdet3d's metafiles for every 'mmdet3d::' config it
    # resolves, and runs a full garbage collection per dataset it builds.
    monkeypatch.setattr('mmengine.config.config.FormatCode', lambda text, **kwargs: (text, None))
    monkeypatch.setattr('mmengine.config.utils._get_cfg_metainfo', _cached_cfg_metainfo)
    monkeypatch.setattr('mmengine.dataset.base_dataset.gc.collect', lambda *args: 0)
    # Small matrices: one thread is as fast on an idle machine and much faster on a shared one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train_and_test(workspace, entry, task)
    finally:
        torch.set_num_threads(threads)


def _train_and_test(workspace, entry, task):
    config = _config_path(entry)
    options = _options(Config.fromfile(config), task)
    name = osp.splitext(osp.basename(config))[0]
    train_dir, test_dir = f'work_dirs/rows/{name}', f'work_dirs/rows/{name}_test'
    _load_tool('train').main([config, '--work-dir', train_dir, '--cfg-options'] + options)
    checkpoint = workspace / train_dir / 'epoch_1.pth'
    assert checkpoint.is_file()
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    assert state['meta']['iter'] == 1  # exactly one training iteration
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values() if v.is_floating_point())

    _load_tool('test').main([config, str(checkpoint), '--work-dir', test_dir, '--cfg-options'] + options)
    metrics = _metrics(str(workspace / test_dir))
    key = 'mAP_0.25' if task == 'det' else 'miou'
    assert any(k.split('/')[-1] == key for k in metrics), metrics
