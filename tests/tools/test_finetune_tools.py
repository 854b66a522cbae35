"""Fine-tuning acceptance on CPU, run as a user would: for GroupFree3D, 3DETR and the token segmentor, the
synthetic demo configs fine-tune a (tiny) pretrained encoder with tools/train.py, and tools/test.py evaluates the
checkpoint with mmdet3d's IndoorMetric / SegMetric. A model fitted on one scene must score higher on it than the
same model before fine-tuning, so the metrics come from real predictions. Everything runs on the CPU, also on a
machine with CUDA (hidden from the subprocesses and from the in-process Runner)."""
import glob
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.cpu import CPU_ENV, force_cpu

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SYNTHETIC = 'configs/sam_mtp/demo/'
DATA = 'data/demo/scannet'
# ft_pretrained_checkpoint of configs/sam_mtp/_base_/demo_finetune_scale.py
PRETRAINED = 'work_dirs/demo/pretrain/seed0/stage2/epoch_30.pth'
# Evaluate on the training scene itself.
ON_TRAIN_SCENE = ['test_dataloader.dataset.ann_file=scannet_infos_train.pkl']
# name: (config, train --cfg-options giving 150 (detection) or 200 (segmentation) iterations on the one
# training scene, metric)
CASES = {
    'groupfree3d': (SYNTHETIC + 'groupfree3d_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py',
                    ['train_dataloader.dataset.times=300', 'randomness.seed=0'], 'AP_0.25'),
    '3detr': (SYNTHETIC + 'threedetr_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py',
              ['train_dataloader.dataset.times=300', 'randomness.seed=0'], 'AP_0.25'),
    'segmentor': (SYNTHETIC + 'tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py',
                  ['randomness.seed=0'], 'miou'),
}


def _run(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **CPU_ENV)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(map(str, args))} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def _write_stand_in_segments(data_root, seed=0):
    """scene_segments/<scene>.bin from the instance masks (a perfect "SAM" segmentation) with 15 % of the points
    unassigned, standing in for tools/make_scene_segments.py (docs/finetune.md) to keep this fast."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(data_root, 'scene_segments'))
    for path in sorted(glob.glob(osp.join(data_root, 'instance_mask', '*.bin'))):
        segment = np.fromfile(path, np.int64) - 1
        segment[rng.random(len(segment)) < 0.15] = -1
        segment.tofile(osp.join(data_root, 'scene_segments', osp.basename(path)))


def _write_demo_pretrained_checkpoint(path):
    """A (randomly initialised) model of the demo's stage-2 config in mmengine's checkpoint format, as tools/demo.py's
    stage 2 writes it."""
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import projects.sam_mtp  # noqa: F401
    init_default_scope('mmdet3d')
    torch.manual_seed(0)
    stage2 = SYNTHETIC + 'sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'
    model = MODELS.build(Config.fromfile(osp.join(ROOT, stage2)).model)
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=12)), path)


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """Config tree, one train and one val synthetic scene with stand-in scene segments, a demo checkpoint."""
    ws = tmp_path_factory.mktemp('finetune_ws')
    os.symlink(osp.join(ROOT, 'configs'), ws / 'configs')
    _run([sys.executable, osp.join(ROOT, 'tools/make_synthetic_data.py'), '--out', DATA, '--splits',
          'train:1,val:1', '--points-per-scene', '6000', '--frames-per-scene', '0', '--seed', '3'], cwd=ws)
    _write_stand_in_segments(str(ws / DATA))
    # ScanNetSegDataset draws training patches by this index; 800 draws of the one scene = 200 batches of 4.
    np.save(ws / DATA / 'seg_info/train_resampled_scene_idxs.npy', np.zeros(800, np.int32))
    _write_demo_pretrained_checkpoint(str(ws / PRETRAINED))
    return ws


def _metrics_json(work_dir):
    files = [osp.join(dp, f) for dp, _, fs in os.walk(work_dir) for f in fs if f.endswith('.json')]
    assert files, f'tools/test.py wrote no metrics json under {work_dir}'
    with open(files[0]) as f:
        return json.load(f)


def _score(metrics, metric):
    """The mean over the classes of the scene (IndoorMetric's per-class AP; classes absent from it are nan and
    mmdet3d's mAP is nan then), or SegMetric's value."""
    if metric == 'miou':
        return metrics['miou']
    values = [v for k, v in metrics.items() if k.endswith('_' + metric) and not k.startswith('mAP') and v == v]
    assert values, metrics
    return float(np.mean(values))


def _evaluate_before_finetuning(ws, config, metric, monkeypatch):
    """The same evaluation of the model as built and initialised for training (pretrained encoder, fresh head),
    in-process with mmengine's Runner."""
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    import projects.sam_mtp  # noqa: F401
    force_cpu(monkeypatch)
    monkeypatch.chdir(ws)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(option.split('=', 1) for option in ON_TRAIN_SCENE))
    cfg.work_dir = str(ws / 'work_dirs' / f'before_{osp.basename(config)}')
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        ckpt = str(ws / 'work_dirs' / f'untrained_{osp.basename(config)}.pth')
        torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
        cfg.load_from = ckpt
        metrics = Runner.from_cfg(cfg).test()
    return _score({k.split('/')[-1]: v for k, v in metrics.items()}, metric)


@pytest.mark.slow
@pytest.mark.parametrize('name', list(CASES))
def test_finetune_then_test_scores_real_predictions(workspace, name, monkeypatch):
    config, train_opts, metric = CASES[name]
    work_dir = f'work_dirs/{name}'
    log = _run([sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir, '--cfg-options',
                'train_cfg.max_epochs=1', 'train_cfg.val_interval=10'] + train_opts, cwd=workspace)
    # The Runner initialised the backbone from the pretrained checkpoint through init_cfg, strictly.
    loaded = rf'SamMtpPointBackbone: loaded \d+ encoder tensors from {re.escape(PRETRAINED)}'
    assert re.search(loaded, log), log[-3000:]
    ckpt = workspace / work_dir / 'epoch_1.pth'
    assert ckpt.is_file()

    test_dir = f'work_dirs/{name}_test'
    log = _run([sys.executable, osp.join(ROOT, 'tools/test.py'), config, str(ckpt), '--work-dir', test_dir,
                '--cfg-options'] + ON_TRAIN_SCENE, cwd=workspace)
    metrics = _metrics_json(workspace / test_dir)
    fitted = _score(metrics, metric)
    assert 0.0 <= fitted <= 1.0 and not math.isnan(fitted), metrics
    before = _evaluate_before_finetuning(workspace, config, metric, monkeypatch)
    assert fitted > before + 0.1, f'{name}: {metric} {fitted:.3f} after fine-tuning vs {before:.3f} before'
