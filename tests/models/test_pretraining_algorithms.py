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
from projects.sam_mtp.models.tokenizers import PointTokens

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))  # tests/: shared helpers
from helpers.labels import make_collated_batch  # noqa: E402
from helpers.mae_reference import reference_decode  # noqa: E402

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
    terms, weights = [], []
    for b in range(features.shape[0]):
        for t in range(features.shape[1]):
            r = int(tokens.region_index[b, t])
            if r <= 0:
                continue
            pred = model.projector(features[b, t])
            terms.append(F.smooth_l1_loss(pred, samples['region_feat'][b, r - 1], beta=1.0))
            weights.append(samples['region_weight'][b, r - 1])
    assert len(terms) == int(losses['target_tokens']) > 0
    # The default weight_scale='batch_mean': the group-weighted mean of the token losses.
    terms, weights = torch.stack(terms), torch.stack(weights)
    torch.testing.assert_close(losses['loss_distill'], (terms * weights).sum() / weights.sum())


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


def hand_tokens(num_real, slots=16, points_per_token=8, seed=0):
    """PointTokens of len(num_real) samples with num_real[b] real tokens and padding after them."""
    gen = torch.Generator().manual_seed(seed)
    batch_size = len(num_real)
    padding = torch.arange(slots)[None].expand(batch_size, -1) >= torch.tensor(num_real)[:, None]
    real = (~padding)[..., None].float()
    return PointTokens(
        neighborhoods=torch.randn(batch_size, slots, points_per_token, 3, generator=gen) * 0.1 * real[..., None],
        centers=torch.rand(batch_size, slots, 3, generator=gen) * 4 * real,
        padding_mask=padding,
        region_index=torch.where(padding, -1, torch.arange(1, slots + 1)[None]),
        point_token=torch.arange(slots)[None].repeat_interleave(points_per_token, 1).expand(batch_size, -1))


# Real tokens per sample, and the tokens that must be masked: round(ratio x real), half to even (the rule of
# random_token_mask), by hand: 0.6 x 15 = 9, 0.6 x 11 = 6.6 -> 7 (floor would give 6); 0.3 x 15 = 4.5 -> 4 (half up
# would give 5), 0.3 x 11 = 3.3 -> 3 (ceil would give 4).
MASK_COUNTS = {0.6: [9, 7], 0.3: [4, 3]}


@pytest.mark.parametrize('algorithm', ['SamMtpMaskedTokenPredictor', 'SamMtpJointPretrainer'])
@pytest.mark.parametrize('mask_ratio', sorted(MASK_COUNTS))
def test_the_model_masks_its_mask_ratio_of_the_real_tokens(algorithm, mask_ratio, monkeypatch):
    """Through the algorithm's loss: the encoder sees exactly the real tokens that are not masked, and the count of
    masked tokens per sample is the configured ratio of that sample's real tokens, rounded half to even."""
    torch.manual_seed(0)
    if algorithm == 'SamMtpMaskedTokenPredictor':
        model = MODELS.build(stage2_cfg(None, mask_ratio=mask_ratio))
    else:
        model = MODELS.build(dict(STAGE1, type=algorithm, mask_ratio=mask_ratio, **MTP_PARTS))
    model.eval()
    num_real = [15, 11]
    tokens = hand_tokens(num_real)
    targets = torch.randn(2, 16, 32) * (~tokens.padding_mask)[..., None]
    seen = []
    encode_visible = model.backbone.encode_visible
    monkeypatch.setattr(model.backbone, 'encode_visible',
                        lambda toks, visible: seen.append(visible.clone()) or encode_visible(toks, visible))
    draws = []
    for _ in range(3):
        with torch.no_grad():
            losses = model.mtp_losses(tokens, targets)
        visible = seen[-1]
        assert not (visible & tokens.padding_mask).any()  # padding is neither visible nor masked
        masked = (~visible & ~tokens.padding_mask).sum(1).tolist()
        assert masked == MASK_COUNTS[mask_ratio], f'{mask_ratio} of {num_real} real tokens'
        assert int(losses['masked_tokens']) == sum(MASK_COUNTS[mask_ratio])
        draws.append(visible)
    assert not all(torch.equal(draws[0], d) for d in draws[1:])  # a random choice, not a fixed one


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


def test_joint_pretrainer_mtp_targets_are_stop_gradient(batch, monkeypatch):
    """The encoder's gradient from L_ins + L_token equals the gradient with the targets taken as constants; a
    model whose targets keep their graph (no ``.detach()``) gets a different gradient, so this test fails."""
    torch.manual_seed(0)
    model = MODELS.build(dict(STAGE1, type='SamMtpJointPretrainer', **MTP_PARTS)).eval()  # no drop-path
    tokens = model.tokenize(batch['inputs'])
    _fixed_mask(monkeypatch, random_token_mask(tokens.padding_mask, 0.6, torch.Generator().manual_seed(1)))
    params = list(model.backbone.parameters())

    def encoder_grad(losses):
        grads = torch.autograd.grad(losses['loss_ins'] + losses['loss_token'], params, allow_unused=True)
        return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])

    got = encoder_grad(model.loss(batch['inputs'], batch['data_samples']))
    constant_targets = model.backbone(tokens).detach()
    expected = encoder_grad(model.mtp_losses(tokens, constant_targets))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    # The mutation: targets that stay in the graph.
    live = encoder_grad(model.mtp_losses(tokens, model.backbone(tokens)))
    assert (live - expected).abs().max() > 1e-4 * expected.abs().max()


def _fixed_mask(monkeypatch, mask):
    """Make the algorithms use ``mask`` (B, M) instead of a random token mask."""
    from projects.sam_mtp.models.algorithms import masked_token_predictor

    def fixed(padding_mask, mask_ratio, generator=None):
        assert padding_mask.shape == mask.shape
        return mask & ~padding_mask

    monkeypatch.setattr(masked_token_predictor, 'random_token_mask', fixed)


def _reference_stage2_losses(model, tokens, masked, token_loss_on='masked'):
    """L_ins and L_token written as loops over samples, from the paper's definitions (§3.5):

    * L_ins: the student encodes only the **visible** real tokens of a sample; their mean feature goes through
      the instance MLP and is compared (MSE) with the mean of the teacher's features over **all** real tokens;
      averaged over samples.
    * L_token: the decoder sees the student's visible features in their slots and the mask token elsewhere
      (centre embeddings of all tokens); at every **masked** token its output goes through the token head and
      is compared (MSE over channels) with the teacher's feature of that token; averaged over masked tokens.

    ``token_loss_on='visible'`` is the mutation used to show the test can fail.
    """
    ins_terms, token_terms = [], []
    for b in range(tokens.padding_mask.shape[0]):
        real = torch.nonzero(~tokens.padding_mask[b]).flatten()
        if len(real) == 0:
            continue
        hidden = masked[b, real]
        visible = real[~hidden]

        def sub(index):
            return PointTokens(tokens.neighborhoods[b:b + 1, index], tokens.centers[b:b + 1, index],
                               torch.zeros(1, len(index), dtype=torch.bool), tokens.region_index[b:b + 1, index],
                               tokens.point_token[b:b + 1])

        teacher = model.teacher.backbone(sub(real))[0]  # (M_b, C), every real token
        student = model.backbone(sub(visible))[0]       # (V_b, C), visible tokens only
        ins_terms.append(F.mse_loss(model.instance_head(student.mean(0)), teacher.mean(0)))
        decoded = reference_decode(model.decoder, student, hidden, tokens.centers[b:b + 1, real])
        chosen = hidden if token_loss_on == 'masked' else ~hidden
        for i in torch.nonzero(chosen).flatten():
            token_terms.append(F.mse_loss(model.token_head(decoded[i]), teacher[i]))
    return torch.stack(ins_terms).mean(), torch.stack(token_terms).mean()


def test_stage2_losses_match_a_loop_reference(stage1_checkpoint, batch, monkeypatch):
    path, _ = stage1_checkpoint
    torch.manual_seed(2)
    model = MODELS.build(stage2_cfg(path))
    model.load_teacher(path)
    model.eval()  # no drop-path: the reference and the module see the same functions
    tokens = model.tokenize(batch['inputs'])
    real = ~tokens.padding_mask
    assert (real.sum(1) >= 4).all()  # both samples have masked and visible tokens
    masked = random_token_mask(tokens.padding_mask, 0.6, torch.Generator().manual_seed(3))
    _fixed_mask(monkeypatch, masked)
    with torch.no_grad():
        losses = model.loss(batch['inputs'], batch['data_samples'])
        ref_ins, ref_token = _reference_stage2_losses(model, tokens, masked)
        wrong_ins, wrong_token = _reference_stage2_losses(model, tokens, masked, token_loss_on='visible')
    assert int(losses['masked_tokens']) == int(masked.sum())
    torch.testing.assert_close(losses['loss_ins'], ref_ins, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(losses['loss_token'], ref_token, atol=1e-5, rtol=1e-4)
    # Mutation check: the same computation on the visible tokens gives another value, so a module that
    # regressed visible tokens (or pooled the wrong set) would fail the comparison above.
    assert abs(float(wrong_token) - float(losses['loss_token'])) > 1e-3


def test_stage2_loss_decreases_on_a_repeated_batch(stage1_checkpoint, batch, monkeypatch):
    path, _ = stage1_checkpoint
    torch.manual_seed(4)
    model = MODELS.build(stage2_cfg(path))
    model.load_teacher(path)
    tokens = model.eval().tokenize(batch['inputs'])
    _fixed_mask(monkeypatch, random_token_mask(tokens.padding_mask, 0.6, torch.Generator().manual_seed(5)))

    def total():
        model.eval()
        with torch.no_grad():
            losses = model.loss(batch['inputs'], batch['data_samples'])
        return float(losses['loss_ins'] + losses['loss_token'])

    optim = build_optim_wrapper(model, dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=3e-3)))
    first = total()
    for _ in range(6):
        model.train()
        model.train_step(batch, optim)
    assert total() < 0.8 * first


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


def test_predict_gives_each_samples_real_tokens_unmasked(batch, stage1_checkpoint):
    """The shared predict (stage 2, Point-MAE, Bridge3D): per sample, the encoder features of every real token and
    nothing of the padding, equal to the encoder run on the whole batch (no masking at prediction)."""
    torch.manual_seed(0)
    model = MODELS.build(stage2_cfg(stage1_checkpoint[0])).eval()
    results = model(batch['inputs'], mode='predict')
    features, tokens = model.extract_feat(batch['inputs'])
    assert len(results) == features.shape[0]
    for b, result in enumerate(results):
        real = (~tokens.padding_mask[b]).nonzero().flatten()
        assert result['token_feats'].shape[0] == len(real) > 0
        torch.testing.assert_close(result['token_feats'], features[b, real])
        torch.testing.assert_close(result['centers'], tokens.centers[b, real])
        assert torch.equal(result['region_index'], tokens.region_index[b, real])
        assert int(result['point_token'].max()) == len(real) - 1
