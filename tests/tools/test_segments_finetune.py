"""The SUN RGB-D and S3DIS SAM-token configs of the paper's rows run on data made by tools/make_scene_segments.py:
synthetic samples in mmdet3d's SUN RGB-D and S3DIS formats (with Stanford 2D-3D-S frames), their scene segments
from the tool (instance images standing in for SAM), then one training epoch of the unchanged config with
tools/train.py, its checkpoint evaluated by tools/test.py. Sizes are cut with --cfg-options only (points per scene,
batch size; the encoder starts from scratch instead of a stage-2 checkpoint).

groupfree3d_plain-transformer-sam-mtp_4xb8-80e_sunrgbd-3d.py (and every other paper-row config) trains and is tested on
segments made by the same tool in tests/tools/test_paper_row_configs.py."""
import glob
import json
import os.path as osp

import numpy as np
import pytest
from helpers.tools import config_workspace, load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FINETUNE = 'configs/sam_mtp/benchmarks/'
NO_WORKERS = [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
              for key in ('num_workers=0', 'persistent_workers=False')]
COMMON = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=10', 'model.backbone.init_cfg=None'] + NO_WORKERS
CASES = {
    # 2 training scenes in one batch, 2000 of their points (20000 in the config)
    'threedetr_sunrgbd': (FINETUNE + 'threedetr_plain-transformer-sam-mtp_1xb8-1080e_sunrgbd-3d.py', [
        'train_dataloader.batch_size=2', 'train_dataloader.dataset.dataset.pipeline.6.num_points=2000',
        'test_dataloader.dataset.pipeline.2.num_points=2000'], 'bed_AP_0.25'),
    # Area 1 trains, Area 5 tests (as the config); 1024-point patches (4096 in the config), slide stride 1 m
    'tokeninterp_s3dis': (FINETUNE + 'tokeninterp_plain-transformer-sam-mtp_2xb16-50e_s3dis-seg.py', [
        'train_dataloader.batch_size=2', 'train_dataloader.dataset.ann_files=[s3dis_infos_Area_1.pkl]',
        'train_dataloader.dataset.scene_idxs=[seg_info/Area_1_resampled_scene_idxs.npy]',
        'train_dataloader.dataset.pipeline.4.num_points=1024', 'model.test_cfg.num_points=1024',
        'model.test_cfg.sample_rate=1.0', 'model.test_cfg.batch_size=8'], 'miou'),
}


def _stand_in_config(folder, base, extra=''):
    """A shipped segments config with the instance images of the synthetic samples standing in for SAM."""
    path = osp.join(folder, f'stand_in_{base}')
    with open(path, 'w') as f:
        f.write(f"_base_ = [{osp.join(ROOT, 'configs', 'sam_mtp', 'segments', base)!r}]\n"
                f"mask_source = dict(_delete_=True, type='InstanceImageMaskSource', folder='instance')\n{extra}")
    return path


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """data/sunrgbd and data/s3dis made by the synthetic writers, scene segments made by the tool."""
    from projects.sam_mtp.datasets.synthetic import write_synthetic_s3dis, write_synthetic_sunrgbd
    ws = config_workspace(tmp_path_factory, 'segments_ft')
    sun, s3dis = str(ws / 'data' / 'sunrgbd'), str(ws / 'data' / 's3dis')
    write_synthetic_sunrgbd(sun, dict(train=2, val=1), seed=1, num_points=3000)
    write_synthetic_s3dis(s3dis, {1: 1, 5: 1}, seed=1, num_points=8000, frames_per_room=4, image_size=96)
    tool = load_tool('make_scene_segments')
    assert tool.main([_stand_in_config(str(ws), 'sunrgbd_sam.py'), '--data-root', sun, '--no-progress', '--info',
                      *sorted(glob.glob(osp.join(sun, 'sunrgbd_infos_*.pkl')))]) == 0
    small = ("segment_cfg = dict(mask_size=(96, 96), registration=dict(max_points=3000, frame_points=20000, "
             "icp_iterations=15))\n")
    assert tool.main([_stand_in_config(str(ws), 's3dis_2d3ds_sam.py', small), '--data-root', s3dis, '--no-progress',
                      '--images-root', osp.join(s3dis, '2d3ds'), '--info',
                      *sorted(glob.glob(osp.join(s3dis, 's3dis_infos_*.pkl')))]) == 0
    return ws


@pytest.fixture
def fast_config_text(monkeypatch):
    """mmengine formats the whole config with yapf five times per run (logs, dump, checkpoint meta): most of a
    one-iteration run on a CPU. The raw config text is enough here."""
    from mmengine.config import Config
    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: self.text))


@pytest.mark.parametrize('name', list(CASES))
def test_sam_token_config_trains_and_tests_on_tool_segments(workspace, name, monkeypatch, fast_config_text):
    config, options, metric = CASES[name]
    monkeypatch.chdir(workspace)
    data_root = osp.join('data', 'sunrgbd' if 'sunrgbd' in name else 's3dis')
    segments = sorted(glob.glob(osp.join(data_root, 'scene_segments', '*.bin')))
    assert len(segments) == (3 if 'sunrgbd' in name else 2)
    with open(segments[0][:-4] + '.json') as f:
        assert json.load(f)['sam'] is True
    work_dir = osp.join('work_dirs', name)
    load_tool('train').main([config, '--work-dir', work_dir, '--cfg-options'] + COMMON + options)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    load_tool('test').main([config, checkpoint, '--work-dir', work_dir + '_test', '--cfg-options'] + COMMON + options)
    files = glob.glob(osp.join(work_dir + '_test', '**', '*.json'), recursive=True)
    assert files, 'tools/test.py wrote no metrics'
    with open(files[0]) as f:
        metrics = json.load(f)
    value = metrics[metric]
    assert isinstance(value, float) and (np.isnan(value) or 0.0 <= value <= 1.0), metrics
