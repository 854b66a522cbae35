"""Stage 1 through the users' command on a GPU: tools/dist_train.sh with one process, NCCL, and --amp."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.labels import make_frame_arrays, write_label_split

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STAGE1 = osp.join(ROOT, 'configs/sam_mtp/demo/sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py')

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def test_dist_train_stage1_one_process_nccl_amp(tmp_path):
    rng = np.random.default_rng(0)
    frames = [make_frame_arrays(rng, (300, 200, 150), 200, feature_dim=64, num_groups=3) for _ in range(4)]
    write_label_split(str(tmp_path / 'labels'), frames)
    cmd = ['bash', osp.join(ROOT, 'tools/dist_train.sh'), STAGE1, '1', '--amp', '--work-dir', 'work',
           '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/labels/', 'train_dataloader.batch_size=2',
           'train_cfg.max_epochs=1', 'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1']
    # The environment as given (run.sh's PYTHONPATH carries the offline install); one GPU.
    env = dict(os.environ, PYTHON=sys.executable, PORT='29571', CUDA_VISIBLE_DEVICES=os.environ.get(
        'CUDA_VISIBLE_DEVICES', '0').split(',')[0])
    env['PYTHONPATH'] = os.pathsep.join([ROOT, env.get('PYTHONPATH', '')])
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert 'Distributed training: True' in log and 'GPU number: 1' in log, log[-3000:]
    assert "backend='nccl'" in log, 'the run did not use NCCL'
    assert 'AmpOptimWrapper' in log, 'the run did not use AMP'
    checkpoint = torch.load(tmp_path / 'work' / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert checkpoint['meta']['epoch'] == 1 and checkpoint['state_dict']
    assert 'loss_scaler' in checkpoint['optimizer']  # AmpOptimWrapper's state
