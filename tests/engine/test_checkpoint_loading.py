"""mmengine checkpoints load under torch's safe loading (weights_only=True) once our package is imported, and bad
or unsafe checkpoint files are refused with one line naming the file and the reason, everywhere a user gives one."""
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from projects.sam_mtp.engine import allow_mmengine_checkpoint_types


def _mmengine_like_checkpoint():
    hub = MessageHub.get_instance('test_checkpoint_loading')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/lr', np.float64(0.1))
    return {
        'meta': {'epoch': 2, 'iter': 10, 'seed': np.int64(3),
                 'dataset_meta': {'classes': ('chair', 'table'), 'palette': np.zeros((2, 3), np.uint8)}},
        'message_hub': hub.state_dict(),
        'state_dict': {'w': torch.arange(4.)},
    }


def test_mmengine_checkpoint_needs_allow_list_and_loads_with_it(tmp_path):
    path = tmp_path / 'epoch_2.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    allow_mmengine_checkpoint_types()
    loaded = torch.load(path, weights_only=True)
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer) and buf.mean() == pytest.approx(1.5)
    assert loaded['meta']['seed'] == 3
    assert torch.equal(loaded['state_dict']['w'], torch.arange(4.))


class _ReachesOtherAttribute:
    """Pickles as getattr(HistoryBuffer, '__init__'): an attribute outside the statistics methods."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


class _ReachesOtherClass:
    """Pickles as getattr(numpy.ndarray, 'tofile'): getattr on a class that is allow-listed for arrays."""

    def __reduce__(self):
        return getattr, (np.ndarray, 'tofile')


@pytest.mark.parametrize('payload', [_ReachesOtherAttribute(), _ReachesOtherClass()])
def test_safe_loading_stays_on_for_other_getattr_uses(tmp_path, payload):
    allow_mmengine_checkpoint_types()
    path = tmp_path / 'crafted.pth'
    torch.save({'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


# ---------------------------------------------------------------------------------------------- bad files
class _RunsShellCommand:
    """What a malicious checkpoint does: unpickling it would call os.system(command)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os
        return os.system, (self.command, )


@pytest.fixture(scope='module')
def bad_checkpoints(tmp_path_factory):
    """name -> (path, regex the one-line reason must match); ``ran`` is the file the shell command would create."""
    root = tmp_path_factory.mktemp('bad_ckpts')
    ran = root / 'the_command_ran'
    good = root / 'good.pth'
    torch.save(_mmengine_like_checkpoint() | {'state_dict': {'w': torch.randn(4096)}}, good)
    data = good.read_bytes()
    files = {
        'truncated': (data[:len(data) // 2], r'truncated or corrupt PyTorch checkpoint: its zip archive is incomplete'),
        'random_bytes': (b'\x13\x37' + np.random.default_rng(0).bytes(3000),
                         r"not a PyTorch checkpoint: neither a zip archive nor a pickle \(it starts with b'\\x137"),
        'html_page': (b'<!DOCTYPE html><html>404</html>', r"not a PyTorch checkpoint.*starts with b'<!DOCTYPE html"),
        'empty': (b'', r'the file is empty'),
    }
    out = {}
    for name, (content, reason) in files.items():
        (root / f'{name}.pth').write_bytes(content)
        out[name] = (str(root / f'{name}.pth'), reason)
    # The os.system pickle, as torch.save writes it (zip) and as pickle.dump writes it (plain pickle).
    unsafe = r'holds posix\.system, a type outside the allow-list of checkpoint contents; refused without running'
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': _RunsShellCommand(f'touch {ran}')}, root / 'evil.pth')
    with open(root / 'evil_pickle.pth', 'wb') as f:
        pickle.dump(_RunsShellCommand(f'touch {ran}'), f)
    out['os_system_torch_save'] = (str(root / 'evil.pth'), unsafe)
    out['os_system_pickle'] = (str(root / 'evil_pickle.pth'), unsafe)
    return out, ran


def _assert_one_line_refusal(message, path, reason, ran):
    assert '\n' not in message and message.count(path) == 1, message
    assert re.search(reason, message), message
    assert 'weights_only' not in message and 'Re-running' not in message, message
    assert not ran.exists(), 'the command inside the checkpoint was run'


@pytest.mark.parametrize('name', ['truncated', 'random_bytes', 'html_page', 'empty', 'os_system_torch_save',
                                  'os_system_pickle'])
def test_bad_checkpoint_files_are_refused_in_one_line(bad_checkpoints, name):
    from mmengine.runner import CheckpointLoader

    from projects.sam_mtp.engine import CheckpointLoadError, load_checkpoint_file
    files, ran = bad_checkpoints
    path, reason = files[name]
    with pytest.raises(CheckpointLoadError) as info:
        load_checkpoint_file(path)
    _assert_one_line_refusal(str(info.value), path, reason, ran)
    # mmengine's loader (load_from, --resume, Pretrained init_cfg) goes through the same function.
    with pytest.raises(CheckpointLoadError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    _assert_one_line_refusal(str(info.value), path, reason, ran)


def test_good_and_missing_checkpoints_through_mmengine(tmp_path):
    from mmengine.runner import CheckpointLoader
    path = tmp_path / 'epoch_2.pth'
    torch.save(_mmengine_like_checkpoint(), path)
    assert CheckpointLoader.load_checkpoint(str(path))['meta']['epoch'] == 2
    with pytest.raises(FileNotFoundError, match=r'nope\.pth: checkpoint file does not exist'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'nope.pth'))


def test_pretrained_init_cfg_and_teacher_name_the_bad_file(bad_checkpoints):
    from mmdet3d.registry import MODELS

    import projects.sam_mtp.models  # noqa: F401
    from projects.sam_mtp.engine import CheckpointLoadError
    from projects.sam_mtp.models.backbones.downstream_backbone import load_encoder_state
    files, ran = bad_checkpoints
    tiny = dict(type='PlainPointTransformer', embed_dims=32, num_layers=1, num_heads=4,
                pointnet_channels=(16, 32, 32), pos_hidden_dims=16)
    path, reason = files['os_system_torch_save']
    encoder = MODELS.build(dict(tiny, init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.')))
    with pytest.raises(CheckpointLoadError) as info:
        encoder.init_weights()  # mmengine's PretrainedInit
    _assert_one_line_refusal(str(info.value), path, reason, ran)
    path, reason = files['truncated']
    with pytest.raises(CheckpointLoadError) as info:
        load_encoder_state(MODELS.build(tiny), path, owner='SamMtpPointBackbone')  # the downstream init_cfg
    _assert_one_line_refusal(str(info.value), path, reason + r'.*\(SamMtpPointBackbone init_cfg\)', ran)
    stage1 = dict(type='SamMtpDistiller', tokenizer=dict(type='SAMGuidedTokenizer'), backbone=tiny,
                  projector=dict(type='TokenProjector', in_channels=32, out_channels=8))
    stage2 = MODELS.build(dict(
        type='SamMtpMaskedTokenPredictor', tokenizer=dict(type='SAMGuidedTokenizer'), backbone=tiny,
        decoder=dict(type='MaskedTokenDecoder', in_channels=32, embed_dims=32, num_layers=1, num_heads=4),
        instance_head=dict(type='TokenProjector', in_channels=32), token_head=dict(type='TokenProjector',
                                                                                   in_channels=32),
        teacher=stage1, teacher_checkpoint=files['random_bytes'][0]))
    with pytest.raises(CheckpointLoadError) as info:
        stage2.init_weights()
    path, reason = files['random_bytes']
    _assert_one_line_refusal(str(info.value), path, reason + r'.*\(teacher_checkpoint of SamMtpMaskedTokenPredictor\)',
                             ran)


def _load_tool(name):
    import importlib.util
    import os.path as osp
    path = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'sam_mtp_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tools_end_in_one_line_for_bad_checkpoints(bad_checkpoints, tmp_path, monkeypatch):
    """tools/test.py CONFIG CKPT and tools/train.py --resume CKPT, in process, as a user runs them."""
    import os.path as osp

    from helpers.cpu import force_cpu
    from helpers.labels import make_frame_arrays, write_label_split
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    files, ran = bad_checkpoints
    force_cpu(monkeypatch)
    monkeypatch.setenv('LOCAL_RANK', '0')
    monkeypatch.chdir(tmp_path)
    # tools/test.py with mmdet3d's VoteNet on mmdet3d's ScanNet fixture; the checkpoint is the os.system pickle.
    path, reason = files['os_system_pickle']
    fixture = osp.join(root, 'tests', 'data', 'mmdet3d', 'scannet')
    with pytest.raises(SystemExit) as info:
        _load_tool('test').main([
            osp.join(root, 'configs/sam_mtp/demo/votenet_pointnet2-ssg_1xb4-2e_synthetic-scannet-3d.py'), path,
            '--work-dir', str(tmp_path / 'test'), '--cfg-options', f'test_dataloader.dataset.data_root={fixture}/',
            'test_dataloader.dataset.ann_file=scannet_infos.pkl'])
    message = str(info.value.code)
    assert message.startswith('error: ')
    _assert_one_line_refusal(message, path, reason, ran)
    # tools/train.py --resume with a truncated checkpoint (stage-1 demo config on a tiny label split).
    rng = np.random.default_rng(0)
    write_label_split(str(tmp_path / 'labels'), [make_frame_arrays(rng, feature_dim=64) for _ in range(2)])
    path, reason = files['truncated']
    with pytest.raises(SystemExit) as info:
        _load_tool('train').main([
            osp.join(root, 'configs/sam_mtp/demo',
                     'sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py'),
            '--work-dir', str(tmp_path / 'train'),
            '--resume', path, '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/labels/',
            'train_dataloader.batch_size=2'])
    message = str(info.value.code)
    assert message.startswith('error: ')
    _assert_one_line_refusal(message, path, reason, ran)


# ------------------------------------------------------------------------------------- mismatching checkpoints
def test_state_mismatch_is_one_line_with_counts_and_first_keys_and_the_full_list_in_the_log():
    from mmengine.logging import MMLogger

    from projects.sam_mtp.engine import describe_state_mismatch
    shapes = [(f's{i}', (i, 2), (i, 3)) for i in range(2)]
    missing = [f'm{i}' for i in range(4)]
    unexpected = [f'u{i}' for i in range(5)]
    logger = MMLogger.get_instance('test_state_mismatch', log_level='INFO')
    records = []
    handler = type('Collect', (__import__('logging').Handler, ), {'emit': lambda self, r: records.append(r)})()
    logger.addHandler(handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(MMLogger, 'get_current_instance', classmethod(lambda cls: logger))
            message = describe_state_mismatch('a.pth', 'the model', missing, unexpected, shapes, hint='do X')
    finally:
        logger.removeHandler(handler)
    # 2 + 4 + 5 = 11 keys; shape mismatches first, then missing, then unexpected; three shown.
    assert message == ('does not fit the model: 11 mismatching keys (2 shape mismatches, 4 missing keys, 5 unexpected '
                       'keys), first s0: checkpoint (0, 2) vs model (0, 3), s1: checkpoint (1, 2) vs model (1, 3), '
                       'm0 (missing) (+8 more in the log); do X')
    logged = [r.getMessage() for r in records]
    assert logged == ["a.pth vs the model: 2 shape mismatches: ['s0: checkpoint (0, 2) vs model (0, 3)', "
                      "'s1: checkpoint (1, 2) vs model (1, 3)']",
                      f'a.pth vs the model: 4 missing keys: {missing}',
                      f'a.pth vs the model: 5 unexpected keys: {unexpected}']
    # Up to three keys: no "more" note; kinds without keys are not counted.
    assert describe_state_mismatch('a.pth', 'm', [], ['u0', 'u1'], []) == \
        'does not fit m: 2 mismatching keys (2 unexpected keys), first u0 (unexpected), u1 (unexpected)'


def _tiny_module():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def test_evaluation_checkpoint_must_hold_every_weight_of_the_model(tmp_path):
    from projects.sam_mtp.engine import CheckpointLoadError, check_checkpoint_fits_model
    model = _tiny_module()
    state = model.state_dict()
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict={f'module.{k}': v for k, v in state.items()}, meta=dict(epoch=1)), good)
    check_checkpoint_fits_model(model, str(good))  # DDP-saved keys are the model's keys
    from mmengine.model import BaseTTAModel

    class TTA(BaseTTAModel):
        def merge_preds(self, data_samples_list):
            return data_samples_list
    model.test_step = lambda data: data  # what BaseTTAModel requires of the model it wraps
    check_checkpoint_fits_model(TTA(module=model), str(good))  # tools/test.py --tta: the wrapped model's keys
    extra = tmp_path / 'extra.pth'
    torch.save(dict(state_dict=dict(state, unused=torch.zeros(1))), extra)
    check_checkpoint_fits_model(model, str(extra))  # a key the model lacks is only logged
    partial = tmp_path / 'partial.pth'
    torch.save(dict(state_dict={k: v for k, v in state.items() if k != '2.bias'}), partial)
    with pytest.raises(CheckpointLoadError) as info:
        check_checkpoint_fits_model(model, str(partial))
    assert str(info.value) == (f'{partial}: holds a state (3 keys under 0., 2.); does not fit the Sequential of the '
                               f'config: 1 mismatching keys (1 missing keys), first 2.bias (missing); evaluating it '
                               f'would score untrained weights')
    reshaped = tmp_path / 'reshaped.pth'
    torch.save(dict(state_dict=dict(state, **{'0.weight': torch.zeros(5, 3)})), reshaped)
    with pytest.raises(CheckpointLoadError, match=r'first 0\.weight: checkpoint \(5, 3\) vs model \(4, 3\);'):
        check_checkpoint_fits_model(model, str(reshaped))


def test_pretraining_checkpoint_is_named_from_its_saved_config(tmp_path):
    from mmengine.config import Config

    import projects.sam_mtp  # noqa: F401  (registers the pretraining algorithms)
    from projects.sam_mtp.engine import CheckpointLoadError, check_checkpoint_fits_model
    from projects.sam_mtp.engine.checkpoint import _model_type_in_config_text
    # mmengine saves the config's text; the model type is read from it without running it: the top-level
    # type of `model`, not a nested one, nor one inside a string.
    text = Config(dict(model=dict(backbone=dict(type='PlainPointTransformer'), teacher=dict(type='SamMtpDistiller'),
                                  note="type='Fake'", type='SamMtpMaskedTokenPredictor'),
                       other=dict(type='X'))).pretty_text
    assert _model_type_in_config_text(text) == 'SamMtpMaskedTokenPredictor'
    assert _model_type_in_config_text("model = dict(backbone=dict(type='A'))\n") is None
    assert _model_type_in_config_text("x = dict(type='A')\n") is None
    state = {'backbone.w': torch.zeros(2), 'decoder.w': torch.zeros(2), 'token_head.w': torch.zeros(2)}
    path = tmp_path / 'stage2.pth'
    torch.save(dict(state_dict=state, meta=dict(cfg=text)), path)
    with pytest.raises(CheckpointLoadError) as info:
        check_checkpoint_fits_model(_tiny_module(), str(path))
    assert str(info.value) == (
        f"{path}: holds a SamMtpMaskedTokenPredictor pretraining state (3 keys under backbone., decoder., "
        f"token_head.), not a trained Sequential: fine-tune it first (tools/train.py with a fine-tuning config) or "
        f"pass it as model.backbone.init_cfg=dict(type='Pretrained', checkpoint='{path}', prefix='backbone.')")
    # A downstream model's checkpoint is named by its type and is not called a pretraining state.
    torch.save(dict(state_dict=state, meta=dict(cfg="model = dict(type='VoteNet')\n")), path)
    with pytest.raises(CheckpointLoadError, match=r'holds a VoteNet model state \(3 keys under .*; does not fit'):
        check_checkpoint_fits_model(_tiny_module(), str(path))
