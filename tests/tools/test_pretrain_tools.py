"""Both pretraining stages through the user's commands on CPU (also on a machine with CUDA, which the subprocesses
do not see): tools/dist_train.sh with two gloo processes that stay in sync, stage 2 taking the stage-1 checkpoint
as its frozen teacher, and --resume in the middle of stage 2 with the teacher loaded again."""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.cpu import CPU_ENV
from helpers.labels import make_frame_arrays, write_label_split

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STAGE1 = osp.join(ROOT, 'configs/sam_mtp/demo/sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py')
STAGE2 = osp.join(ROOT, 'configs/sam_mtp/demo/sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py')


def _dist_train(config, work_dir, port, cwd, *options):
    cmd = ['bash', osp.join(ROOT, 'tools/dist_train.sh'), str(config), '2', '--work-dir', work_dir,
           '--cfg-options', f'train_dataloader.dataset.data_root={cwd}/labels/', 'train_dataloader.batch_size=2',
           'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=3', *options]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port),
               PYTHONPATH=os.pathsep.join([ROOT, osp.join(ROOT, 'tests')]), **CPU_ENV)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    return log


def _ckpt(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.mark.slow
def test_dist_train_sync_resume_and_stage2_teacher(tmp_path):
    rng = np.random.default_rng(0)
    # 64-d targets: the demo configs' stand-in feature width.
    frames = [make_frame_arrays(rng, (300, 200, 150), 200, feature_dim=64, num_groups=3) for _ in range(8)]
    write_label_split(str(tmp_path / 'labels'), frames)
    # Stage 1 with a hook that makes every rank save its parameters before and after training.
    config = tmp_path / 'stage1_rank_params.py'
    config.write_text(f"_base_ = [{STAGE1!r}]\ncustom_imports = dict(imports=['projects.sam_mtp', "
                      "'helpers.rank_weights_hook'], allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='SaveRankParamsHook')]\n")

    log = _dist_train(config, 'w1', 29561, tmp_path, 'train_cfg.max_epochs=1')
    assert 'Distributed training: True' in log and 'GPU number: 2' in log
    assert osp.isfile(tmp_path / 'w1' / 'epoch_1.pth')
    # Synchronised: each rank trained on its own half of the frames, yet both end with the same parameters,
    # which moved away from their (common) initial values; the model is wrapped in DDP.
    ranks = [_ckpt(tmp_path / 'w1' / f'rank{r}_params.pth') for r in (0, 1)]
    assert [r['wrapper'] for r in ranks] == ['MMDistributedDataParallel'] * 2
    assert ranks[0]['before'].keys() == ranks[1]['after'].keys() and ranks[0]['after']
    for key, value in ranks[0]['after'].items():
        assert torch.equal(value, ranks[1]['after'][key]), key
        assert torch.equal(ranks[0]['before'][key], ranks[1]['before'][key]), key
    assert any(not torch.equal(v, ranks[0]['before'][k]) for k, v in ranks[0]['after'].items())

    teacher = str(tmp_path / 'w1' / 'epoch_1.pth')
    log = _dist_train(STAGE2, 'w2', 29562, tmp_path, 'train_cfg.max_epochs=1', f'model.teacher_checkpoint={teacher}')
    assert f'loaded the frozen teacher from {teacher}' in log
    saved = _ckpt(tmp_path / 'w2' / 'epoch_1.pth')['state_dict']
    assert saved and not [k for k in saved if 'teacher' in k]
    # --resume (here in stage 2; stage 1 resumes through the same Runner code): training continues from epoch 1
    # with the same number of iterations per epoch, and the teacher, which the stage-2 checkpoint does not hold,
    # is loaded again from teacher_checkpoint before the resume.
    log = _dist_train(STAGE2, 'w2', 29563, tmp_path, 'train_cfg.max_epochs=2', f'model.teacher_checkpoint={teacher}',
                      '--resume')
    assert 'resumed epoch: 1' in log, log[-3000:]
    assert log.index(f'loaded the frozen teacher from {teacher}') < log.index('resumed epoch: 1')
    first, second = _ckpt(tmp_path / 'w2' / 'epoch_1.pth'), _ckpt(tmp_path / 'w2' / 'epoch_2.pth')
    assert second['meta']['epoch'] == 2 and second['meta']['iter'] == 2 * first['meta']['iter']
    assert not [k for k in second['state_dict'] if 'teacher' in k]
    assert len(glob.glob(str(tmp_path / 'w2' / '*' / '*.log'))) == 2
