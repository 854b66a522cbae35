"""tools/train.py and tools/test.py refuse a config that does not fit its data or checkpoint with one `error:` line,
before any model step (issue 20, items 4-7), and tools/test.py --show-dir writes one PNG per sample without
open3d. In-process runs replace the Runner by a tripwire; subprocess runs check what a user sees on stderr."""
import glob
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.cpu import CPU_ENV, force_cpu
from helpers.labels import make_frame_arrays, write_label_split
from helpers.tools import config_workspace, load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIXTURES = osp.join(ROOT, 'tests', 'data', 'mmdet3d')
STAGE1 = osp.join(ROOT, 'configs/sam_mtp/pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py')
VOTENET = osp.join(ROOT, 'configs/sam_mtp/demo/votenet_pointnet2-ssg_1xb4-2e_synthetic-scannet-3d.py')
GROUPFREE = osp.join(ROOT, 'configs/sam_mtp/demo/groupfree3d_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py')
STAGE2_DEMO = osp.join(ROOT, 'configs/sam_mtp/demo/sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py')
DATA = 'data/demo/scannet'


def _run(args, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **CPU_ENV)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def no_runner(monkeypatch, tmp_path):
    """In-process tools whose Runner must never be built (the checks come first)."""
    from mmengine.runner import Runner

    def tripwire(*args, **kwargs):
        raise AssertionError('the Runner was built: the check came too late')
    force_cpu(monkeypatch)
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(Runner, 'from_cfg', tripwire)
    monkeypatch.setattr(Runner, 'train', tripwire)


def _tool_error(tool, argv):
    with pytest.raises(SystemExit) as info:
        load_tool(tool, f'sam_mtp_tools_{tool}_checks').main(argv)
    message = info.value.code
    assert isinstance(message, str) and message.startswith('error: ') and '\n' not in message, message
    return message


def _mmdet3d_info(path, dataset, data_list):
    with open(path, 'wb') as f:
        pickle.dump(dict(metainfo=dict(dataset=dataset), data_list=data_list), f)


def test_train_refuses_labels_of_another_width(no_runner, tmp_path):
    """The paper's 768-d stage-1 config on 64-d labels (the demo's stand-in features)."""
    rng = np.random.default_rng(0)
    ann = write_label_split(str(tmp_path / 'labels'), [make_frame_arrays(rng, feature_dim=64) for _ in range(2)])
    message = _tool_error('train', [STAGE1, '--work-dir', 'work', '--cfg-options',
                                    f'train_dataloader.dataset.data_root={tmp_path}/labels/'])
    assert message == (f'error: {ann}: the labels have 64-d region features (metainfo feature_dim), but {STAGE1} '
                       f'regresses 768-d targets (model.projector.out_channels); use labels of the config\'s '
                       f'feature source or --cfg-options model.projector.out_channels=64')
    assert not (tmp_path / 'work').exists()


def test_train_refuses_sunrgbd_infos_in_a_scannet_config(no_runner, tmp_path):
    """mmdet3d's own SUN RGB-D info file given to the ScanNet VoteNet config (RepeatDataset-wrapped)."""
    ann = osp.join(FIXTURES, 'sunrgbd', 'sunrgbd_infos.pkl')
    message = _tool_error('train', [VOTENET, '--work-dir', 'work', '--cfg-options',
                                    f'train_dataloader.dataset.dataset.data_root={FIXTURES}/sunrgbd/',
                                    'train_dataloader.dataset.dataset.ann_file=sunrgbd_infos.pkl'])
    assert message.startswith(f"error: {ann}: a SUN RGB-D info file (metainfo dataset='SUNRGBD'), but "
                              f'train_dataloader.dataset.dataset of {VOTENET} is a ScanNetDataset')
    assert not (tmp_path / 'work').exists()


def test_train_refuses_an_empty_info_file(no_runner, tmp_path):
    (tmp_path / 'scannet').mkdir()
    _mmdet3d_info(tmp_path / 'scannet' / 'scannet_infos_train.pkl', 'scannet', [])
    message = _tool_error('train', [VOTENET, '--work-dir', 'work', '--cfg-options',
                                    f'train_dataloader.dataset.dataset.data_root={tmp_path}/scannet/'])
    assert message == (f'error: {tmp_path}/scannet/scannet_infos_train.pkl: no samples (data_list is empty); '
                       f'train_dataloader.dataset.dataset of {VOTENET} would have nothing to train on')


def test_train_data_root_hint_is_the_key_of_the_wrapped_dataset(no_runner, tmp_path):
    """VoteNet's train set is a RepeatDataset: the hint names train_dataloader.dataset.dataset.data_root, and
    passing that key gets past the check (it names the real setting)."""
    message = _tool_error('train', [VOTENET, '--work-dir', 'work'])
    assert message.endswith('or override it with --cfg-options train_dataloader.dataset.dataset.data_root=PATH')
    assert 'data_root "data/demo/scannet/"' in message
    # The hint's key, with the fixture's folder: the train set passes and the check moves on to val.
    message = _tool_error('train', [VOTENET, '--work-dir', 'work', '--cfg-options',
                                    f'train_dataloader.dataset.dataset.data_root={FIXTURES}/scannet/',
                                    'train_dataloader.dataset.dataset.ann_file=scannet_infos.pkl'])
    assert 'val_dataloader' in message and message.endswith('val_dataloader.dataset.data_root=PATH')


def test_train_check_error_is_one_stderr_line(tmp_path):
    """As a user runs it: the 768-d config on 64-d labels prints one line on stderr and builds no Runner."""
    rng = np.random.default_rng(0)
    ann = write_label_split(str(tmp_path / 'labels'), [make_frame_arrays(rng, feature_dim=64) for _ in range(2)])
    proc = _run([osp.join(ROOT, 'tools/train.py'), STAGE1, '--work-dir', 'work', '--cfg-options',
                 f'train_dataloader.dataset.data_root={tmp_path}/labels/'], cwd=tmp_path, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: {ann}: the labels have 64-d region features'), \
        proc.stderr
    assert not (tmp_path / 'work').exists()


def _write_stand_in_segments(data_root):
    """scene_segments/<scene>.bin: the instance ids (minus 1) stand in for tools/make_scene_segments.py."""
    os.makedirs(osp.join(data_root, 'scene_segments'))
    for path in sorted(glob.glob(osp.join(data_root, 'instance_mask', '*.bin'))):
        (np.fromfile(path, np.int64) - 1).tofile(osp.join(data_root, 'scene_segments', osp.basename(path)))


def _save(model_cfg, path, seed=0):
    """A randomly initialised model of ``model_cfg`` saved as mmengine saves it (state_dict and meta['cfg'])."""
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner.checkpoint import save_checkpoint

    import projects.sam_mtp  # noqa: F401
    init_default_scope('mmdet3d')
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    save_checkpoint(dict(state_dict=model.state_dict(),
                         meta=dict(epoch=1, cfg=Config(dict(model=model_cfg)).pretty_text)), str(path))
    return model


@pytest.fixture(scope='module')
def finetune_ws(tmp_path_factory):
    """One synthetic ScanNet-format val scene with stand-in segments; the demo's stage-2 checkpoint; a checkpoint
    of the synthetic GroupFree3D fine-tuning model itself."""
    from mmengine.config import Config
    ws = config_workspace(tmp_path_factory, 'checks_ws')
    proc = _run([osp.join(ROOT, 'tools/make_synthetic_data.py'), '--out', DATA, '--splits', 'train:1,val:1',
                 '--points-per-scene', '3000', '--frames-per-scene', '0', '--seed', '3'], cwd=ws)
    assert proc.returncode == 0, proc.stderr
    _write_stand_in_segments(str(ws / DATA))
    _save(Config.fromfile(STAGE2_DEMO).model, ws / 'stage2.pth')
    model_cfg = Config.fromfile(GROUPFREE).model
    model_cfg.backbone.init_cfg = None
    _save(model_cfg, ws / 'groupfree3d.pth')
    return ws


def test_test_tool_refuses_a_pretraining_checkpoint(finetune_ws, tmp_path):
    """tools/test.py with the stage-2 checkpoint on the fine-tuning config scored an untrained head and
    returned 0; now one line says what the checkpoint holds and what to do, and nothing is evaluated."""
    stage2 = str(finetune_ws / 'stage2.pth')
    proc = _run([osp.join(ROOT, 'tools/test.py'), GROUPFREE, stage2, '--work-dir', str(tmp_path / 'work'),
                 '--cfg-options', 'model.backbone.init_cfg=None'], cwd=finetune_ws, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f'error: {stage2}: holds a SamMtpMaskedTokenPredictor pretraining state (')
    assert lines[0].endswith(f"not a trained GroupFree3DNet: fine-tune it first (tools/train.py with a fine-tuning "
                             f"config) or pass it as model.backbone.init_cfg=dict(type='Pretrained', "
                             f"checkpoint='{stage2}', prefix='backbone.')")
    num_keys = len(torch.load(stage2, weights_only=False)['state_dict'])
    assert f'({num_keys} keys under backbone., decoder., instance_head., token_head.)' in lines[0]
    # Refused before the Runner: nothing evaluated, no work_dir. The full list of mismatching keys is logged.
    assert 'Epoch(test)' not in proc.stdout and not (tmp_path / 'work').exists()
    assert f'{stage2} vs the GroupFree3DNet of the config: ' in proc.stdout
    missing = [line for line in proc.stdout.splitlines() if ' missing keys: [' in line]
    assert len(missing) == 1 and "'bbox_head.decoder_self_posembeds." in missing[0]


def test_train_encoder_mismatch_is_one_line_and_the_keys_are_in_the_log(finetune_ws, tmp_path):
    """Fine-tuning a 32-d encoder from the 64-d stage-2 checkpoint: 28 mis-shaped keys. It was a 26-line traceback
    ending in an 865-character line; now one error line, before the first step, every key in the run's log."""
    stage2 = str(finetune_ws / 'stage2.pth')
    proc = _run([osp.join(ROOT, 'tools/train.py'), GROUPFREE, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                 f'model.backbone.init_cfg.checkpoint={stage2}', 'model.backbone.encoder.embed_dims=32'],
                cwd=finetune_ws, timeout=300)
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert errors == [proc.stderr.splitlines()[-1]]
    # Expected: the encoder tensors whose shape follows embed_dims (64 in the file, 32 in the config).
    saved = torch.load(stage2, weights_only=False)['state_dict']
    from mmdet3d.registry import MODELS
    from mmengine.config import Config

    import projects.sam_mtp  # noqa: F401
    encoder_cfg = Config.fromfile(GROUPFREE).model.backbone.encoder
    own = MODELS.build(dict(encoder_cfg, embed_dims=32)).state_dict()
    mis_shaped = [f'backbone.{k}' for k, v in own.items() if saved[f'backbone.{k}'].shape != v.shape]
    assert errors[0].startswith(f'error: {stage2}: does not fit SamMtpPointBackbone.encoder: {len(mis_shaped)} '
                                f'mismatching keys ({len(mis_shaped)} shape mismatches), first {mis_shaped[0]}: ')
    assert f'(+{len(mis_shaped) - 3} more in the log)' in errors[0]
    assert not glob.glob(str(tmp_path / 'work' / '*.pth'))  # no step, no checkpoint
    log = open(glob.glob(str(tmp_path / 'work' / '*' / '*.log'))[0]).read()
    logged = [line for line in log.splitlines() if f'{len(mis_shaped)} shape mismatches: [' in line]
    assert len(logged) == 1 and all(f"'{key}: checkpoint " in logged[0] for key in mis_shaped)


def test_test_tool_show_dir_writes_one_png_per_sample_without_open3d(finetune_ws, tmp_path):
    """The model's own (untrained) checkpoint passes the checkpoint check; --show-dir draws its predictions."""
    import importlib.util
    assert importlib.util.find_spec('open3d') is None  # the stack has no open3d: mmdet3d's visualizer failed
    show_dir = tmp_path / 'show'
    proc = _run([osp.join(ROOT, 'tools/test.py'), GROUPFREE, str(finetune_ws / 'groupfree3d.pth'), '--work-dir',
                 str(tmp_path / 'work'), '--show-dir', str(show_dir), '--score-thr', '0', '--cfg-options',
                 'model.backbone.init_cfg=None'], cwd=finetune_ws, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(show_dir)) == ['scene0001_00.png']  # the one val scene, named after its points
    from PIL import Image
    image = np.asarray(Image.open(show_dir / 'scene0001_00.png').convert('RGB'))
    assert image.shape == (600, 600, 3)
    # Red prediction footprints (score_thr 0 keeps all 32 proposals) and green ground-truth ones are drawn.
    red = (image[..., 0] > 180) & (image[..., 1] < 90) & (image[..., 2] < 90)
    green = (image[..., 1] > 120) & (image[..., 0] < 100) & (image[..., 2] < 100)
    assert red.sum() > 50 and green.sum() > 50


@pytest.mark.parametrize('flags,what', [
    (['--show'], '--show (an open3d window)'),
    (['--show-dir', 'pics', '--task', 'mono_det'], '--show-dir with --task mono_det'),
])
def test_test_tool_views_needing_open3d_are_refused_in_one_line(no_runner, tmp_path, flags, what):
    (tmp_path / 'model.pth').write_bytes(b'')
    message = _tool_error('test', [VOTENET, str(tmp_path / 'model.pth'), *flags])
    assert message == (f'error: {what} needs open3d, which this stack does not install; --show-dir DIR with --task '
                       f'lidar_det or lidar_seg writes PNGs without it')
    assert not (tmp_path / 'pics').exists()
