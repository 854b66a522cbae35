"""Stage-1 distiller, stage-2 masked token predictor (frozen teacher) and the joint ablation, at tiny sizes."""
import copy
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmengine.optim import build_optim_wrapper
from mmengine.runner.checkpoint import get_state_dict

import projects.sam_mtp.models  # noqa: F401 (registration)
from projects.sam_mtp.models.algorithms import random_token_mask
sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))  # tests/: shared helpers
from helpers.labels import make_collated_batch  # noqa: E402

FEATURE_DIM = 8
TOKENIZER = dict(type='SAMGuidedTokenizer', num_points_per_token=8, min_points=4, max_tokens=16,
                 max_fallback_tokens=4)
BACKBONE = dict(type='PlainPointTransformer', embed_dims=32, num_layers=2, num_heads=4, drop_path_rate=0.1,
                pointnet_channels=(16, 32, 32), pos_hidden_dims=16)
STAGE1 = dict(type='SamMtpDistiller', tokenizer=TOKENIZER, backbone=BACKBONE,
              projector=dict(type='TokenProjector', in_channels=32, out_channels=FEATURE_DIM),
              loss=dict(type='GroupBalancedDistillLoss'))
MTP_PARTS = dict(
    decoder=dict(type='MaskedTokenDecoder', in_channels=32, embed_dims=32, num_layers=2, num_heads=4,
                 pos_hidden_dims=16),
    instance_head=dict(type='TokenProjector', in_channels=32, num_layers=2),
    token_head=dict(type='TokenProjector', in_channels=32))


def stage2_cfg(checkpoint=None, **kwargs):
    return dict(type='SamMtpMaskedTokenPredictor', tokenizer=TOKENIZER, backbone=BACKBONE, teacher=STAGE1,
                teacher_checkpoint=checkpoint, **MTP_PARTS, **kwargs)


@pytest.fixture
def batch():
    return make_collated_batch(seed=0, feature_dim=FEATURE_DIM)


@pytest.fixture
def stage1_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(STAGE1)
    path = tmp_path / 'stage1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), path)
    return str(path), model


def test_stage1_loss_matches_brute_force(batch):
    torch.manual_seed(0)
    model = MODELS.build(STAGE1).eval()  # eval: deterministic tokens and no drop-path
    losses = model.loss(batch['inputs'], batch['data_samples'])
    features, tokens = model.extract_feat(batch['inputs'])
    samples = batch['data_samples']
    terms = []
    for b in range(features.shape[0]):
        for t in range(features.shape[1]):
            r = int(tokens.region_index[b, t])
            if r <= 0:
                continue
            pred = model.projector(features[b, t])
            l1 = F.smooth_l1_loss(pred, samples['region_feat'][b, r - 1], beta=1.0)
            terms.append(l1 * samples['region_weight'][b, r - 1] * samples['num_groups'][b])
    assert len(terms) == int(losses['target_tokens']) > 0
    torch.testing.assert_close(losses['loss_distill'], torch.stack(terms).mean())


def test_stage1_train_step_backward_and_predict(batch):
    torch.manual_seed(0)
    model = MODELS.build(STAGE1).train()
    losses = model(batch['inputs'], batch['data_samples'], mode='loss')
    losses['loss_distill'].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
    optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=3e-3)))
    model.eval()  # fixed tokens so the loss of one batch is comparable across steps
    first = model.loss(batch['inputs'], batch['data_samples'])['loss_distill'].item()
    for _ in range(15):
        model.train_step(batch, optim)
    model.eval()
    assert model.loss(batch['inputs'], batch['data_samples'])['loss_distill'].item() < 0.8 * first
    results = model(batch['inputs'], mode='predict')
    assert len(results) == 2
    m0 = results[0]['token_feats'].shape[0]
    assert results[0]['projected'].shape == (m0, FEATURE_DIM) and results[0]['centers'].shape == (m0, 3)
    assert int(results[0]['point_token'].max()) == m0 - 1


def test_stage1_errors(batch):
    model = MODELS.build(STAGE1)
    with pytest.raises(ValueError, match='inputs must be a dict with "points"'):
        model.loss(batch['inputs']['points'], batch['data_samples'])
    with pytest.raises(ValueError, match="data_samples must be a dict with"):
        model.loss(batch['inputs'], {'region_feat': batch['data_samples']['region_feat']})
    bad = copy.deepcopy(batch['data_samples'])
    bad['region_mask'][0, 1] = False  # region 2 of sample 0 has points but no target row
    with pytest.raises(ValueError, match='sample 0 has points with region ids that have no target'):
        model.loss(batch['inputs'], bad)
    with pytest.raises(RuntimeError, match='invalid mode'):
        model(batch['inputs'], mode='foo')


@pytest.mark.parametrize('num_real,expected', [(0, 0), (1, 0), (2, 1), (3, 2), (5, 3), (10, 6), (16, 10)])
def test_random_token_mask_counts(num_real, expected):
    slots = 16
    padding = (torch.arange(slots) >= num_real)[None].expand(4, -1)
    masks = [random_token_mask(padding, 0.6) for _ in range(3)]
    for mask in masks:
        assert mask.sum(1).tolist() == [expected] * 4
        assert not (mask & padding).any()
    if 0 < expected < num_real:
        assert not all(torch.equal(masks[0], m) for m in masks[1:])  # random, not fixed
    with pytest.raises(ValueError, match='mask_ratio'):
        random_token_mask(padding, 1.0)


def test_stage2_teacher_is_frozen_hidden_and_loaded(stage1_checkpoint, batch):
    path, stage1 = stage1_checkpoint
    torch.manual_seed(1)
    model = MODELS.build(stage2_cfg(path))
    model.init_weights()
    teacher = model.teacher
    for key, value in stage1.state_dict().items():
        torch.testing.assert_close(teacher.state_dict()[key], value)
    teacher_ids = {id(p) for p in teacher.parameters()}
    # not a registered submodule: not in parameters(), state_dict() or mmengine's checkpoint dict
    assert not teacher_ids & {id(p) for p in model.parameters()}
    assert all(not k.startswith(('teacher', '_teacher')) for k in model.state_dict())
    assert set(get_state_dict(model)) == set(model.state_dict())
    student_numel = sum(p.numel() for p in model.parameters())
    assert student_numel == sum(p.numel() for m in model.children() for p in m.parameters())
    # not in the optimizer mmengine builds from the model
    optim_cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
                     paramwise_cfg=dict(norm_decay_mult=0.))
    optim = build_optim_wrapper(model, optim_cfg)
    in_optimizer = {id(p) for group in optim.optimizer.param_groups for p in group['params']}
    assert not teacher_ids & in_optimizer
    assert in_optimizer == {id(p) for p in model.parameters()}
    # frozen: no grad flag, eval mode under model.train(), no gradient after backward
    model.train()
    assert not teacher.training and all(not m.training for m in teacher.modules())
    assert all(not p.requires_grad for p in teacher.parameters())
    losses = model(batch['inputs'], batch['data_samples'], mode='loss')
    assert set(losses) == {'loss_ins', 'loss_token', 'masked_tokens'}
    assert torch.isfinite(losses['loss_ins']) and torch.isfinite(losses['loss_token'])
    (losses['loss_ins'] + losses['loss_token']).backward()
    assert all(p.grad is None for p in teacher.parameters())
    for name in ('backbone', 'decoder', 'instance_head', 'token_head'):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name
    # a training step leaves the teacher unchanged
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    model.train_step(batch, optim)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    # device/dtype moves reach the teacher
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in teacher.parameters())
    model.float()
    assert all(p.dtype == torch.float32 for p in teacher.parameters())
    # a student checkpoint round-trips strictly without the teacher
    fresh = MODELS.build(stage2_cfg(path))
    fresh.load_state_dict(model.state_dict(), strict=True)


def test_stage2_targets(stage1_checkpoint, batch):
    path, stage1 = stage1_checkpoint
    stage1.eval()
    tokens = stage1.tokenize(batch['inputs'])
    for target, target_norm in [('encoder', False), ('projector', False), ('encoder', True)]:
        model = MODELS.build(stage2_cfg(path, target=target, target_norm=target_norm))
        model.load_teacher(path)
        got = model.teacher_targets(tokens)
        expected = stage1.backbone(tokens)
        if target == 'projector':
            expected = stage1.projector(expected)
            assert model.token_head.out_channels == FEATURE_DIM
        if target_norm:
            expected = F.layer_norm(expected, expected.shape[-1:])
        expected = expected * (~tokens.padding_mask)[..., None]
        torch.testing.assert_close(got, expected)
        assert not got.requires_grad


def test_stage2_errors(stage1_checkpoint, tmp_path, batch):
    path, _ = stage1_checkpoint
    model = MODELS.build(stage2_cfg(None))
    with pytest.raises(RuntimeError, match='teacher has no weights'):
        model.loss(batch['inputs'], batch['data_samples'])
    with pytest.raises(ValueError, match='teacher_checkpoint is not set'):
        model.init_weights()
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth: teacher checkpoint does not exist'):
        model.load_teacher(missing)
    # a teacher of another width: shape mismatches listed with the file name
    wider = copy.deepcopy(STAGE1)
    wider['backbone'] = dict(BACKBONE, embed_dims=48, num_heads=4)
    wider['projector'] = dict(type='TokenProjector', in_channels=48, out_channels=FEATURE_DIM)
    wide_path = str(tmp_path / 'wide.pth')
    torch.save(dict(state_dict=MODELS.build(wider).state_dict()), wide_path)
    with pytest.raises(RuntimeError, match=r'wide\.pth: does not fit the teacher.*shape mismatches.*backbone\.'):
        model.load_teacher(wide_path)
    # a checkpoint without the projector: missing keys listed
    state = torch.load(path, weights_only=True)['state_dict']
    partial_path = str(tmp_path / 'partial.pth')
    torch.save(dict(state_dict={k: v for k, v in state.items() if not k.startswith('projector')}), partial_path)
    with pytest.raises(RuntimeError, match=r'partial\.pth.*missing keys.*projector\.layers\.0\.weight'):
        model.load_teacher(partial_path)
    # DDP-style "module." prefixes are accepted
    ddp_path = str(tmp_path / 'ddp.pth')
    torch.save(dict(state_dict={f'module.{k}': v for k, v in state.items()}), ddp_path)
    model.load_teacher(ddp_path)
    with pytest.raises(ValueError, match="target must be one of"):
        MODELS.build(stage2_cfg(path, target='decoder'))
    with pytest.raises(ValueError, match='token_head.out_channels=5 but the targets have 32'):
        MODELS.build(dict(stage2_cfg(path), token_head=dict(type='TokenProjector', in_channels=32,
                                                            out_channels=5)))


def test_joint_pretrainer_loss_and_backward(batch):
    torch.manual_seed(0)
    cfg = dict(STAGE1, type='SamMtpJointPretrainer', **MTP_PARTS)
    model = MODELS.build(cfg).train()
    losses = model(batch['inputs'], batch['data_samples'], mode='loss')
    assert {'loss_distill', 'loss_ins', 'loss_token'} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    for name in ('backbone', 'projector', 'decoder', 'instance_head', 'token_head'):
        assert all(p.grad is not None for p in getattr(model, name).parameters()), name
    # the MTP targets are stop-gradient: the token loss alone does not reach the projector
    model.zero_grad()
    model.loss(batch['inputs'], batch['data_samples'])['loss_token'].backward()
    assert all(p.grad is None for p in model.projector.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_stage2_step_on_cuda_moves_the_teacher(stage1_checkpoint, batch):
    path, _ = stage1_checkpoint
    model = MODELS.build(stage2_cfg(path))
    model.init_weights()
    model.cuda()
    assert all(p.is_cuda for p in model.teacher.parameters())
    optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)))
    log = model.train_step(batch, optim)  # the data preprocessor moves the batch
    assert torch.isfinite(log['loss'])
