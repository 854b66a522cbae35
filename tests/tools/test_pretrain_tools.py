"""Both pretraining stages through the user's commands on CPU: tools/dist_train.sh with two gloo processes,
--resume in the middle of stage 1, and stage 2 taking the stage-1 checkpoint as its frozen teacher."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers.labels import make_frame_arrays, write_label_split

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STAGE1 = osp.join(ROOT, 'configs/sam_mtp/demo/stage1_demo.py')
STAGE2 = osp.join(ROOT, 'configs/sam_mtp/demo/stage2_demo.py')


def _dist_train(config, work_dir, port, cwd, *options):
    cmd = ['bash', osp.join(ROOT, 'tools/dist_train.sh'), config, '2', '--work-dir', work_dir, '--cfg-options',
           f'train_dataloader.dataset.data_root={cwd}/labels/', 'train_dataloader.batch_size=2',
           'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=3', *options]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port), PYTHONPATH=ROOT)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    return log


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU (gloo) launcher path')
def test_dist_train_resume_and_stage2_teacher(tmp_path):
    rng = np.random.default_rng(0)
    # 64-d targets: the demo configs' stand-in feature width.
    frames = [make_frame_arrays(rng, (300, 200, 150), 200, feature_dim=64, num_groups=3) for _ in range(8)]
    write_label_split(str(tmp_path / 'labels'), frames)

    log = _dist_train(STAGE1, 'w1', 29561, tmp_path, 'train_cfg.max_epochs=1')
    assert 'GPU number: 2' in log and osp.isfile(tmp_path / 'w1' / 'epoch_1.pth')

    log = _dist_train(STAGE1, 'w1', 29562, tmp_path, 'train_cfg.max_epochs=2', '--resume')
    assert 'resumed epoch: 1' in log, log[-3000:]
    first = torch.load(tmp_path / 'w1' / 'epoch_1.pth', map_location='cpu', weights_only=True)
    second = torch.load(tmp_path / 'w1' / 'epoch_2.pth', map_location='cpu', weights_only=True)
    assert second['meta']['epoch'] == 2 and second['meta']['iter'] == 2 * first['meta']['iter']

    teacher = str(tmp_path / 'w1' / 'epoch_2.pth')
    log = _dist_train(STAGE2, 'w2', 29563, tmp_path, 'train_cfg.max_epochs=1', f'model.teacher_checkpoint={teacher}')
    assert f'loaded the frozen teacher from {teacher}' in log
    saved = torch.load(tmp_path / 'w2' / 'epoch_1.pth', map_location='cpu', weights_only=True)['state_dict']
    assert saved and not [k for k in saved if 'teacher' in k]
