"""Pretraining -> fine-tuning: stage-1 and stage-2 checkpoints (built from
configs/sam_mtp/pretrain/sam-mtp-stage{1,2}_*.py) load strictly into SamMtpPointBackbone through
init_cfg=dict(type='Pretrained', ...); every encoder weight takes the checkpoint's value, only the listed
head/projection keys stay fresh, and mismatching files fail clearly."""
import glob
import os.path as osp

import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import projects.sam_mtp  # noqa: F401  (registers modules, allow-lists mmengine checkpoint types)
import projects.sam_mtp.models.detectors  # noqa: F401
import projects.sam_mtp.models.heads  # noqa: F401

init_default_scope('mmdet3d')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STAGE1 = 'configs/sam_mtp/pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py'
STAGE2 = 'configs/sam_mtp/pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py'
DEMO_STAGE1 = 'configs/sam_mtp/demo/sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py'
DEMO_STAGE2 = 'configs/sam_mtp/demo/sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'
KNN_STAGE1 = 'configs/sam_mtp/ablations/sam-mtp-stage1-knn-tokens_plain-transformer_4xb16-120e_scannet-frames.py'
KNN_STAGE2 = 'configs/sam_mtp/ablations/sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames.py'
SMALL_ENCODER = dict(embed_dims=32, num_layers=2, num_heads=4, pointnet_channels=(16, 32, 32), pos_hidden_dims=16)
# Downstream keys that no pretraining stage has: the detection head and the backbone's output projection.
EXPECTED_MISSING_PREFIXES = ('bbox_head.', 'backbone.out_proj.')
# Pretraining keys that fine-tuning drops: stage-1 projector, stage-2 decoder and prediction heads.
EXPECTED_UNUSED_PREFIXES = ('projector.', 'decoder.', 'instance_head.', 'token_head.')


def _load_cfg(rel_path):
    return Config.fromfile(osp.join(REPO, rel_path))


def pretraining_model(rel_config, encoder=None):
    """The model of a pretraining config; ``encoder`` (dict) overrides the encoder widths of every part."""
    cfg = _load_cfg(rel_config).model
    if encoder is not None:
        dims = encoder['embed_dims']
        for part in [cfg] + ([cfg.teacher] if 'teacher' in cfg else []):
            part.backbone.update(encoder)
            if 'projector' in part:
                part.projector.update(in_channels=dims, out_channels=8)
        if 'decoder' in cfg:
            cfg.decoder.update(in_channels=dims, embed_dims=dims, num_layers=1, pos_hidden_dims=16)
            cfg.instance_head.update(in_channels=dims, hidden_channels=dims)
            cfg.token_head.update(in_channels=dims)
    return MODELS.build(cfg)


def save_randomised(model, path, seed=0, key_prefix=''):
    """Save ``model``'s state in mmengine's format with every tensor replaced by seeded random values, so a
    loaded value can only have come from this file. Returns the saved state dict."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            state[key] = torch.randn(value.shape, generator=gen).abs() + 0.5 if 'running_var' in key else \
                torch.randn(value.shape, generator=gen)
        else:
            state[key] = torch.randint(1, 1000, value.shape, generator=gen, dtype=value.dtype)
    torch.save(dict(state_dict={key_prefix + k: v for k, v in state.items()},
                    meta=dict(epoch=120, iter=1000, mmengine_version='0.10.7')), path)
    return state


def downstream_detector(checkpoint, encoder=SMALL_ENCODER, prefix='backbone.', out_channels=48, tokenizer=None):
    dims = out_channels or encoder['embed_dims']
    tokenizer = tokenizer or dict(type='SAMGuidedTokenizer', num_points_per_token=8, min_points=4, max_tokens=16)
    cfg = dict(
        type='ThreeDETR',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=dict(
            type='SamMtpPointBackbone',
            tokenizer=tokenizer,
            encoder=dict(type='PlainPointTransformer', pos_every_block=False, **encoder),
            segment_channel=3,
            out_channels=out_channels,
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix=prefix)),
        bbox_head=dict(type='ThreeDETRHead', num_classes=3, in_channels=dims, num_queries=8, embed_dims=32,
                       num_decoder_layers=1, num_heads=4, feedforward_channels=32, mlp_channels=(32, )),
        train_cfg=dict(assigner=dict(type='mmdet.HungarianAssigner',
                                     match_costs=[dict(type='mmdet.ClassificationCost', weight=1.0)])))
    torch.manual_seed(1)
    return MODELS.build(cfg)


def assert_encoder_loaded(model, saved, prefix='backbone.'):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_weights()  # what mmengine's Runner calls before training
    after = model.state_dict()
    encoder_keys = {k[len(prefix):] for k in saved if k.startswith(prefix)}
    loaded = {'backbone.encoder.' + k for k in encoder_keys}
    # Strict: the downstream model has exactly the checkpoint's encoder plus the expected-missing keys ...
    assert set(after) - loaded and all(k.startswith(EXPECTED_MISSING_PREFIXES) for k in set(after) - loaded), \
        sorted(k for k in set(after) - loaded if not k.startswith(EXPECTED_MISSING_PREFIXES))
    assert loaded <= set(after)
    # ... the checkpoint has nothing else but the parts fine-tuning drops ...
    unused = [k for k in saved if not k.startswith(prefix)]
    assert all(k.startswith(EXPECTED_UNUSED_PREFIXES) for k in unused), unused
    # ... and EVERY encoder tensor now holds the checkpoint's value (none left at its initialisation).
    for key in encoder_keys:
        ours = 'backbone.encoder.' + key
        assert not torch.equal(before[ours], saved[prefix + key]), f'{ours} already equal before loading'
        assert torch.equal(after[ours], saved[prefix + key]), f'{ours} was not loaded'
    assert len(encoder_keys) == len(model.backbone.encoder.state_dict())


@pytest.mark.parametrize('stage', [STAGE1, STAGE2])
def test_pretraining_checkpoint_loads_into_the_downstream_backbone(tmp_path, stage):
    pretrain = pretraining_model(stage, SMALL_ENCODER)
    ckpt = str(tmp_path / 'epoch_120.pth')
    saved = save_randomised(pretrain, ckpt)
    if 'stage2' in stage:
        assert not [k for k in saved if 'teacher' in k]  # the frozen teacher is never saved
        assert [k for k in saved if k.startswith('decoder.')]
    assert_encoder_loaded(downstream_detector(ckpt), saved)


def test_ddp_prefixed_checkpoint_and_prefix_without_dot(tmp_path):
    ckpt = str(tmp_path / 'ddp.pth')
    saved = save_randomised(pretraining_model(STAGE1, SMALL_ENCODER), ckpt,
                            key_prefix='module.')
    assert_encoder_loaded(downstream_detector(ckpt, prefix='backbone'), saved)


def test_loaded_encoder_reproduces_the_pretraining_features(tmp_path):
    """Same tokens in, same features out: the downstream encoder is the pretraining encoder (key for key)."""
    pretrain = pretraining_model(STAGE1, SMALL_ENCODER).eval()
    ckpt = str(tmp_path / 'stage1.pth')
    torch.save(dict(state_dict=pretrain.state_dict(), meta=dict()), ckpt)
    model = downstream_detector(ckpt, tokenizer=_load_cfg(STAGE1).model.tokenizer)
    model.backbone.encoder.encoder.pos_every_block = True  # as in pretraining, for this comparison only
    model.init_weights()
    model.eval()
    gen = torch.Generator().manual_seed(3)
    points = torch.rand(1, 200, 3, generator=gen)
    region = torch.randint(0, 5, (1, 200), generator=gen)
    with torch.no_grad():
        features, tokens = pretrain.extract_feat(dict(points=points, point_region=region))
        out = model.backbone(torch.cat([points, (region - 1).float()[..., None]], dim=-1))
    real = ~tokens.padding_mask
    expected = model.backbone.out_proj(features)[real]
    torch.testing.assert_close(out['fp_features'][-1].transpose(1, 2)[real], expected)


def test_every_finetune_config_loads_its_stage2_checkpoint(tmp_path):
    """The real configs: a full-size model of the stage-2 config (STAGE2) loads strictly into the backbone of every
    fine-tuning config, and the CPU demo's stage-2 model (DEMO_STAGE2) into the demo's fine-tuning configs."""
    full, demo = str(tmp_path / 'stage2_full.pth'), str(tmp_path / 'stage2_demo.pth')
    save_randomised(pretraining_model(STAGE2), full)
    save_randomised(pretraining_model(DEMO_STAGE2), demo)
    encoders = {full: _load_cfg(STAGE1).model.backbone, demo: _load_cfg(DEMO_STAGE1).model.backbone}
    # Every config with the SAM-MTP fine-tuning backbone: the paper rows and baselines (benchmarks/), the
    # fine-tuning ablations (ablations/) and the demo's CPU-size twins (demo/).
    configs = [path for folder in ('benchmarks', 'ablations', 'demo')
               for path in sorted(glob.glob(osp.join(REPO, 'configs', 'sam_mtp', folder, '*.py')))
               if Config.fromfile(path).model.backbone.type == 'SamMtpPointBackbone']
    assert len(configs) >= 20
    for path in configs:
        checkpoint = demo if f'{osp.sep}demo{osp.sep}' in path else full
        backbone = Config.fromfile(path).model.backbone
        # The fine-tuning encoder is the pretraining one (only pos_every_block may differ, see 3DETR).
        for key, value in encoders[checkpoint].items():
            if key != 'pos_every_block':
                assert backbone.encoder[key] == value, f'{path}: encoder.{key}'
        backbone.init_cfg = dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
        model = MODELS.build(backbone)
        model.init_weights()  # strict: raises on any missing, unknown or mis-shaped encoder key


def test_mismatching_checkpoints_raise_errors_naming_file_and_keys(tmp_path):
    from projects.sam_mtp.engine import CheckpointLoadError
    ckpt = str(tmp_path / 'stage1_small.pth')
    saved = save_randomised(pretraining_model(STAGE1, SMALL_ENCODER), ckpt)
    wider = dict(SMALL_ENCODER, embed_dims=48)
    model = downstream_detector(ckpt, encoder=wider)
    # Expected: every encoder tensor whose shape depends on the width, in the encoder's own key order.
    own = model.backbone.encoder.state_dict()
    mis_shaped = [k for k, v in own.items() if saved[f'backbone.{k}'].shape != v.shape]
    assert len(mis_shaped) > 3
    with pytest.raises(CheckpointLoadError) as err:  # the tools end with its one line (run_tool)
        model.init_weights()
    message = str(err.value)
    assert '\n' not in message
    first = ', '.join(f'backbone.{k}: checkpoint {tuple(saved["backbone." + k].shape)} vs model {tuple(own[k].shape)}'
                      for k in mis_shaped[:3])
    assert message.startswith(f'{ckpt}: does not fit SamMtpPointBackbone.encoder: {len(mis_shaped)} mismatching keys '
                              f'({len(mis_shaped)} shape mismatches), first {first} (+{len(mis_shaped) - 3} more in '
                              f'the log); use the encoder settings')

    with pytest.raises(RuntimeError, match=r"unexpected keys\), first backbone\.encoder\.blocks\.1\..* \(unexpected\)"):
        downstream_detector(ckpt, encoder=dict(SMALL_ENCODER, num_layers=1)).init_weights()
    with pytest.raises(RuntimeError, match=r"missing keys\), first backbone\.encoder\.blocks\.2\..* \(missing\)"):
        downstream_detector(ckpt, encoder=dict(SMALL_ENCODER, num_layers=3)).init_weights()
    with pytest.raises(RuntimeError, match=r"no key starts with prefix 'student\.'"):
        downstream_detector(ckpt, prefix='student.').init_weights()
    missing = str(tmp_path / 'nowhere.pth')
    with pytest.raises(FileNotFoundError, match=f'{missing}: pretrained checkpoint does not exist'):
        downstream_detector(missing).init_weights()
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match=f'{corrupt}: cannot read the pretrained checkpoint'):
        downstream_detector(str(corrupt)).init_weights()


def test_without_init_cfg_nothing_is_loaded(tmp_path):
    model = downstream_detector('unused.pth')
    model.backbone.init_cfg = None
    model.init_weights()  # scratch twin: plain initialisation, no file needed
    assert model.backbone.is_init


# ------------------------------------------------------------------ pretraining vs fine-tuning tokenizer
KNN_TOKENIZER = dict(type='FPSKNNTokenizer', num_tokens=16, num_points_per_token=8)


def _save_with_config(rel_config, path):
    """A small model of a pretraining config saved as mmengine's Runner saves it: the merged config's text in
    ``meta['cfg']`` (Runner.save_checkpoint)."""
    torch.save(dict(state_dict=pretraining_model(rel_config, SMALL_ENCODER).state_dict(),
                    meta=dict(epoch=1, cfg=_load_cfg(rel_config).pretty_text)), path)
    return path


@pytest.fixture
def warnings_logged(monkeypatch):
    import logging

    from projects.sam_mtp.models.backbones import downstream_backbone
    messages = []
    monkeypatch.setattr(downstream_backbone, 'print_log', lambda msg, **kw: messages.append((msg, kw.get('level'))))
    monkeypatch.setattr(downstream_backbone.SamMtpPointBackbone, '_warned_tokenizer_mismatches', set())
    return lambda: [msg for msg, level in messages if level == logging.WARNING]


def test_finetuning_with_another_tokenizer_than_pretraining_warns_once(tmp_path, warnings_logged):
    knn = _save_with_config(KNN_STAGE1, str(tmp_path / 'knn.pth'))
    for _ in range(2):  # two models of one run (e.g. a rebuilt model), each initialised twice: one warning
        model = downstream_detector(knn)  # SAM-guided tokens
        model.init_weights()
        model.backbone.init_weights()
    assert len(warnings_logged()) == 1
    message = warnings_logged()[0]
    assert message.startswith(f'{knn}: its encoder was pretrained on FPSKNNTokenizer tokens but is fine-tuned on '
                              'SAMGuidedTokenizer tokens'), message

    sam = _save_with_config(STAGE2, str(tmp_path / 'sam.pth'))
    downstream_detector(sam, tokenizer=KNN_TOKENIZER).init_weights()  # the other direction
    assert len(warnings_logged()) == 2 and 'pretrained on SAMGuidedTokenizer tokens but is fine-tuned on ' \
        'FPSKNNTokenizer tokens' in warnings_logged()[1]


def test_the_pretraining_tokenizer_gives_no_warning(tmp_path, warnings_logged):
    sam = _save_with_config(STAGE1, str(tmp_path / 'sam.pth'))
    downstream_detector(sam).init_weights()
    knn = _save_with_config(KNN_STAGE2, str(tmp_path / 'knn.pth'))
    downstream_detector(knn, tokenizer=KNN_TOKENIZER).init_weights()
    # Unknown: a checkpoint without the config text (saved by hand) says nothing, so nothing is claimed.
    bare = str(tmp_path / 'bare.pth')
    save_randomised(pretraining_model(KNN_STAGE1, SMALL_ENCODER), bare)
    downstream_detector(bare).init_weights()
    assert warnings_logged() == []


def test_tokenizer_type_is_read_from_the_config_text_without_running_it():
    from projects.sam_mtp.models.backbones.pretraining_tokenizer import (
        pretraining_tokenizer_type,
        tokenizer_type_from_config_text,
    )
    assert tokenizer_type_from_config_text("model = dict(type='X', tokenizer=dict(type='FPSKNNTokenizer'))") == \
        'FPSKNNTokenizer'
    # A fine-tuned model's tokenizer sits in its backbone; scope prefixes and dict literals are understood.
    assert tokenizer_type_from_config_text(
        "model = dict(backbone={'type': 'SamMtpPointBackbone', 'tokenizer': {'type': 'mmdet3d.SAMGuidedTokenizer'}})"
    ) == 'SAMGuidedTokenizer'
    # The last assignment counts, as when mmengine reads the file.
    assert tokenizer_type_from_config_text(
        "model = dict(tokenizer=dict(type='A'))\nmodel = dict(tokenizer=dict(type='B'))") == 'B'
    for text in ("model = dict(type='ThreeDETR')", "optim = dict(tokenizer=dict(type='A'))", 'model = (',
                 "model = dict(tokenizer=dict(type=name))", "import os; os.system('false')"):
        assert tokenizer_type_from_config_text(text) is None, text
    assert pretraining_tokenizer_type(None) is None and pretraining_tokenizer_type(dict(epoch=1)) is None
