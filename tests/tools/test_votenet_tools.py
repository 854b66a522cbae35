"""Acceptance of the Foundation tools on CPU, run as a user would: mmdet3d's stock VoteNet (PointNet2 backbone)
trains on synthetic ScanNet-format scenes, resumes from its checkpoint, is evaluated by tools/test.py with
mmdet3d's IndoorMetric, and tools/dist_train.sh runs two gloo processes that both finish. The subprocesses see no
CUDA device, so a GPU machine runs these CPU checks too."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from helpers.cpu import CPU_ENV
from helpers.tools import config_workspace

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/sam_mtp/demo/votenet_pointnet2-ssg_1xb4-2e_synthetic-scannet-3d.py'


def _run(args, cwd, timeout=600, env=None):
    full_env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **CPU_ENV, **(env or {}))
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(map(str, args))} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A working directory with the config tree and 4 train + 2 val synthetic scenes."""
    ws = config_workspace(tmp_path_factory, 'votenet_ws')
    _run([sys.executable, osp.join(ROOT, 'tools/make_synthetic_data.py'), '--out', 'data/demo/scannet',
          '--splits', 'train:4,val:2', '--points-per-scene', '10000', '--frames-per-scene', '0', '--seed', '1'],
         cwd=ws)
    return ws


def _cfg_opts(max_epochs):
    return ['--cfg-options', f'train_cfg.max_epochs={max_epochs}', f'train_cfg.val_interval={max_epochs}']


@pytest.mark.slow
def test_train_resume_test_votenet_on_cpu(workspace):
    train = [sys.executable, osp.join(ROOT, 'tools/train.py'), CONFIG, '--work-dir', 'work_dirs/votenet']
    _run(train + _cfg_opts(1), cwd=workspace)
    assert osp.isfile(workspace / 'work_dirs/votenet/epoch_1.pth')

    proc = _run(train + ['--resume'] + _cfg_opts(2), cwd=workspace)
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1' in log, log[-2000:]
    # Safe loading (projects.sam_mtp allow-lists mmengine's checkpoint types) reads mmengine's checkpoints.
    import projects.sam_mtp  # noqa: F401
    first = torch.load(workspace / 'work_dirs/votenet/epoch_1.pth', map_location='cpu', weights_only=True)
    second = torch.load(workspace / 'work_dirs/votenet/epoch_2.pth', map_location='cpu', weights_only=True)
    assert second['meta']['epoch'] == 2 and second['meta']['iter'] == 2 * first['meta']['iter'] > 0

    proc = _run([sys.executable, osp.join(ROOT, 'tools/test.py'), CONFIG, 'work_dirs/votenet/epoch_2.pth',
                 '--work-dir', 'work_dirs/votenet_test'], cwd=workspace)
    log = proc.stdout + proc.stderr
    # IndoorMetric's table and its summary keys come from mmdet3d's evaluation of real predictions.
    assert 'mAP_0.25' in log and 'mAP_0.50' in log, log[-3000:]
    metrics = [osp.join(dp, f) for dp, _, fs in os.walk(workspace / 'work_dirs/votenet_test') for f in fs
               if f.endswith('.json')]
    assert metrics, 'tools/test.py wrote no metrics json'
    with open(metrics[0]) as f:
        values = json.load(f)
    assert 'mAP_0.25' in values
    # mmdet3d averages over all 18 classes, so classes absent from the 2 val scenes make mAP nan; the classes
    # that do occur must have a real AP.
    per_class = [v for k, v in values.items() if k.endswith('_AP_0.25') and v == v]
    assert per_class and all(0.0 <= v <= 1.0 for v in per_class), values


@pytest.mark.slow
def test_dist_train_two_cpu_processes(workspace):
    proc = _run(['bash', osp.join(ROOT, 'tools/dist_train.sh'), CONFIG, '2', '--work-dir', 'work_dirs/dist']
                + _cfg_opts(1), cwd=workspace, env={'PYTHON': sys.executable, 'PORT': '29531'})
    log = proc.stdout + proc.stderr
    assert osp.isfile(workspace / 'work_dirs/dist/epoch_1.pth')
    # torchrun exits 0 only when every process exited 0; the runner must have seen a 2-process group.
    assert 'Distributed training: True' in log, log[-3000:]
    assert 'GPU number: 2' in log, log[-3000:]
