"""Point-MAE on scenes: the Chamfer-L2 loss against a double loop, the algorithm's loss against a hand-built case
and a loop reference over tokens, masking, the masked groups' stop-gradient, bad input, and its configs (one
Runner iteration whose checkpoint loads strictly into a fine-tuning config)."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

import projects.sam_mtp  # noqa: F401 (registration)
from projects.sam_mtp.engine.launch import ConfigCheckError, check_model_config
from projects.sam_mtp.models.losses import chamfer_l2
from projects.sam_mtp.models.tokenizers import PointTokens

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))  # tests/: shared helpers
from helpers.labels import make_collated_batch, make_frame_arrays, write_label_split  # noqa: E402
from helpers.mae_reference import reference_decode  # noqa: E402
from helpers.runner import point_mae_one_iteration  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FULL_CONFIG = 'configs/sam_mtp/pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py'
DEMO_CONFIG = 'configs/sam_mtp/demo/point-mae_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'
STAGE1_CONFIG = 'configs/sam_mtp/pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py'
SYNTHETIC_FINETUNE = 'configs/sam_mtp/demo/tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py'
GROUP = 8
TINY = dict(
    type='PointMAE',
    tokenizer=dict(type='FPSKNNTokenizer', num_tokens=48, num_points_per_token=GROUP),
    backbone=dict(type='PlainPointTransformer', embed_dims=32, num_layers=2, num_heads=4, drop_path_rate=0.1,
                  pointnet_channels=(16, 32, 32), pos_hidden_dims=16),
    decoder=dict(type='MaskedTokenDecoder', in_channels=32, embed_dims=32, num_layers=2, num_heads=4,
                 pos_hidden_dims=16),
    head=dict(type='PointGroupReconstructionHead', in_channels=32),
    mask_ratio=0.75)


def _load(rel_path):
    return Config.fromfile(osp.join(REPO, rel_path))


def brute_force_chamfer_l2(pred, target):
    """Point-MAE's ChamferDistanceL2 written as loops: for every point of every group, the squared distance to
    the nearest point of the other cloud of the same group; each direction averaged over all its points (of
    all groups); the two directions summed."""
    pred_terms, target_terms = [], []
    for p_group, t_group in zip(pred.reshape(-1, *pred.shape[-2:]), target.reshape(-1, *target.shape[-2:])):
        for p in p_group:
            pred_terms.append(min(sum((p[c] - t[c]) ** 2 for c in range(3)) for t in t_group))
        for t in t_group:
            target_terms.append(min(sum((t[c] - p[c]) ** 2 for c in range(3)) for p in p_group))
    return sum(pred_terms) / len(pred_terms) + sum(target_terms) / len(target_terms)


# ----------------------------------------------------------------------------------------------- Chamfer-L2
@pytest.mark.parametrize('shapes', [((2, 3, 5, 3), (2, 3, 7, 3)), ((4, 6, 3), (4, 6, 3))])
def test_chamfer_l2_equals_a_double_loop(shapes):
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(shapes[0], generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randn(shapes[1], generator=gen, dtype=torch.float64)
    got = chamfer_l2(pred, target)
    expected = brute_force_chamfer_l2(pred, target)  # a differentiable scalar built from the same leaf
    torch.testing.assert_close(got, expected)
    # The gradient of the matched squared distances (2 (p - t) per pair), as the reference kernel's backward.
    grad, = torch.autograd.grad(got, pred)
    expected_grad, = torch.autograd.grad(expected, pred)
    torch.testing.assert_close(grad, expected_grad)
    # Per group: the same two means inside every group.
    per_group = chamfer_l2(pred, target, reduction='none')
    assert per_group.shape == shapes[0][:-2]
    for index in np.ndindex(*per_group.shape):
        torch.testing.assert_close(per_group[index], brute_force_chamfer_l2(pred[index][None], target[index][None]))


def test_chamfer_l2_hand_values_and_errors():
    # pred {(0,0,0), (1,0,0)} vs target {(0,0,0), (0,2,0)}: pred -> target 0 and 1 (squared), target -> pred 0
    # and min(4, 1 + 4) = 4: 0.5 + 2 = 2.5. Unsquared distances would give 0.5 + 1, halving 1.25.
    pred = torch.tensor([[[0., 0., 0.], [1., 0., 0.]]])
    target = torch.tensor([[[0., 0., 0.], [0., 2., 0.]]])
    assert float(chamfer_l2(pred, target)) == pytest.approx(2.5)
    assert float(chamfer_l2(target, pred)) == pytest.approx(2.5)
    loss = MODELS.build(dict(type='ChamferL2Loss', loss_weight=2.))
    assert float(loss(pred, target)) == pytest.approx(5.0)
    empty = torch.zeros(0, 4, 3, requires_grad=True)
    zero = chamfer_l2(empty, torch.zeros(0, 4, 3))
    assert float(zero) == 0. and zero.requires_grad
    with pytest.raises(ValueError, match='same leading shape'):
        chamfer_l2(torch.zeros(2, 4, 3), torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match='reduction'):
        chamfer_l2(pred, target, reduction='sum')


# ----------------------------------------------------------------------------------------------- the loss
def _tokens(neighborhoods, centers, padding_mask=None):
    batch, num = centers.shape[:2]
    if padding_mask is None:
        padding_mask = torch.zeros(batch, num, dtype=torch.bool)
    return PointTokens(neighborhoods, centers, padding_mask, torch.zeros(batch, num, dtype=torch.long),
                       torch.zeros(batch, 1, dtype=torch.long))


def test_loss_on_a_hand_built_two_group_batch():
    """One sample, two 2-point groups, the second masked. The head is set to always predict
    {(0,0,0), (1,0,0)}, so the loss is the Chamfer-L2 of that prediction and the masked group only."""
    model = MODELS.build(dict(TINY, tokenizer=dict(type='FPSKNNTokenizer', num_points_per_token=2))).eval()
    with torch.no_grad():
        model.head.increase_dim.weight.zero_()
        model.head.increase_dim.bias.copy_(torch.tensor([0., 0., 0., 1., 0., 0.]))
    groups = torch.tensor([[[[1., 0., 0.], [0., 0., 0.]],      # visible: the prediction itself (loss 0)
                            [[0., 0., 0.], [0., 2., 0.]]]])    # masked
    tokens = _tokens(groups, torch.tensor([[[0., 0., 0.], [3., 0., 0.]]]))
    losses = model.reconstruct(tokens, torch.tensor([[False, True]]))
    # pred -> masked group: 0 and 1; masked group -> pred: 0 and min(4, 1 + 4) = 4 (squared distances).
    expected = (0. + 1.) / 2 + (0. + 4.) / 2
    assert float(losses['loss_recon']) == pytest.approx(expected)
    assert int(losses['masked_tokens']) == 1
    # Masking the visible group instead gives 0: the loss reads the masked group, not the other one.
    assert float(model.reconstruct(tokens, torch.tensor([[True, False]]))['loss_recon']) == pytest.approx(0.)


@pytest.fixture
def batch():
    # 107 and 30 points: 48 and 30 tokens, so the second sample has 18 padded token slots.
    return make_collated_batch(seed=0, region_sizes_per_frame=((40, 30, 20, 5), (10, 8, 6)),
                               num_unassigned=(12, 6))


def _sub_tokens(tokens, b, index):
    return _tokens(tokens.neighborhoods[b:b + 1, index], tokens.centers[b:b + 1, index])


def reference_loss(model, tokens, masked, loss_on='masked'):
    """Point-MAE's loss written as loops over samples and tokens: per sample, the encoder sees only the visible
    real tokens (in a sequence of their own); the decoder's input has their features in their slots and the mask
    token in the masked ones, with the centre embedding of every real token; each masked token's decoder output
    goes through the head and is compared with its own group by brute-force Chamfer-L2. As in Point-MAE, the
    mean runs over all points of all masked groups (all have the same size). ``loss_on='visible'`` is the
    mutation used to show the test can fail."""
    pred_terms, target_terms = [], []
    for b in range(tokens.padding_mask.shape[0]):
        real = torch.nonzero(~tokens.padding_mask[b]).flatten()
        hidden = masked[b, real]
        student = model.backbone(_sub_tokens(tokens, b, real[~hidden]))[0]
        decoded = reference_decode(model.decoder, student, hidden, tokens.centers[b:b + 1, real])
        chosen = hidden if loss_on == 'masked' else ~hidden
        for i in torch.nonzero(chosen).flatten():
            pred = model.head.increase_dim(decoded[i]).reshape(-1, 3)
            target = tokens.neighborhoods[b, real[i]]
            for p in pred:
                pred_terms.append(((p[None] - target) ** 2).sum(-1).min())
            for t in target:
                target_terms.append(((t[None] - pred) ** 2).sum(-1).min())
    return torch.stack(pred_terms).mean() + torch.stack(target_terms).mean()


def _fixed_mask(tokens, seed, ratio=0.75):
    """A random mask of round(ratio * M_real) real tokens per sample, drawn here."""
    gen = torch.Generator().manual_seed(seed)
    masked = torch.zeros_like(tokens.padding_mask)
    for b, num_real in enumerate(tokens.num_tokens.tolist()):
        masked[b, torch.randperm(num_real, generator=gen)[:round(ratio * num_real)]] = True
    return masked


def test_loss_equals_a_loop_reference_over_tokens(batch):
    torch.manual_seed(0)
    model = MODELS.build(TINY).eval()  # eval: no drop-path, BN running statistics in both computations
    tokens = model.tokenize(batch['inputs'])
    assert tokens.num_tokens.tolist() == [48, 30] and bool(tokens.padding_mask.any())
    masked = _fixed_mask(tokens, seed=1)
    with torch.no_grad():
        losses = model.reconstruct(tokens, masked)
        expected = reference_loss(model, tokens, masked)
        on_visible = reference_loss(model, tokens, masked, loss_on='visible')
    assert int(losses['masked_tokens']) == 36 + 22
    torch.testing.assert_close(losses['loss_recon'], expected, atol=1e-5, rtol=1e-4)
    # Mutation check: the loss of the visible groups differs, so a model reconstructing them fails above.
    assert abs(float(on_visible) - float(expected)) > 1e-3 * float(expected)


@pytest.mark.parametrize('ratio', [0.75, 0.6])
def test_loss_masks_the_configured_fraction_of_real_tokens(batch, ratio):
    """``loss`` masks round(mask_ratio * M_real) real tokens of every sample (48 and 30 here); padding never."""
    torch.manual_seed(3)
    model = MODELS.build(dict(TINY, mask_ratio=ratio)).train()
    losses = model(batch['inputs'], batch['data_samples'], mode='loss')
    assert int(losses['masked_tokens']) == round(ratio * 48) + round(ratio * 30)
    assert torch.isfinite(losses['loss_recon']) and float(losses['loss_recon']) > 0
    losses['loss_recon'].backward()
    for name in ('backbone', 'decoder', 'head'):
        assert all(p.grad is not None for p in getattr(model, name).parameters() if p.requires_grad), name


def test_masked_groups_reach_the_loss_only_as_targets(batch):
    """The gradient of the loss with respect to the tokens' points is exactly zero at every masked token (its
    points are a constant target and the encoder never sees them) and non-zero at visible ones. A model whose
    encoder sees every token, or whose targets keep their graph, gets gradient at the masked tokens."""
    torch.manual_seed(0)
    model = MODELS.build(TINY).eval()
    tokens = model.tokenize(batch['inputs'])
    masked = _fixed_mask(tokens, seed=2)
    tokens.neighborhoods.requires_grad_(True)
    loss = model.reconstruct(tokens, masked)['loss_recon']
    grad, = torch.autograd.grad(loss, tokens.neighborhoods)
    assert torch.count_nonzero(grad[masked]) == 0
    visible = ~masked & ~tokens.padding_mask
    assert (grad[visible].abs().sum(dim=(-1, -2)) > 0).float().mean() > 0.5
    # The masked tokens' points do not change the prediction: moving them changes only the target.
    moved = PointTokens(tokens.neighborhoods.detach() + 5. * masked[..., None, None], tokens.centers,
                        tokens.padding_mask, tokens.region_index, tokens.point_token)

    def decoded(t):
        visible = model.backbone.encode_visible(t, ~masked)
        return model.decoder(visible.features, visible.index, t.centers, t.padding_mask)[masked]

    with torch.no_grad():
        torch.testing.assert_close(decoded(tokens), decoded(moved))


def test_construction_errors():
    with pytest.raises(ValueError, match=r'head.num_points=4 but model.tokenizer.num_points_per_token=8'):
        MODELS.build(dict(TINY, head=dict(TINY['head'], num_points=4)))
    with pytest.raises(ValueError, match='mask_ratio must be in'):
        MODELS.build(dict(TINY, mask_ratio=1.0))
    with pytest.raises(ValueError, match=r'the tokenizer \(TokenProjector\) has no fixed num_points_per_token'):
        MODELS.build(dict(TINY, tokenizer=dict(type='TokenProjector', in_channels=3, out_channels=3)))


# ----------------------------------------------------------------------------------------------- bad input
def _train_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('sam_mtp_tools_train', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_group_size_larger_than_the_frames_stops_before_the_first_step(tmp_path, monkeypatch):
    # Config level: the pipeline samples 100 points per frame, the groups need 128.
    cfg = _load(FULL_CONFIG)
    cfg.train_dataloader.dataset.pipeline[-2].num_points = 100
    with pytest.raises(ConfigCheckError) as err:
        check_model_config(cfg, FULL_CONFIG)
    assert str(err.value) == (
        f'{FULL_CONFIG}: model.tokenizer.num_points_per_token=128 exceeds the 100 points per scene of '
        'train_dataloader.dataset.pipeline[4] (FrameSamplePoints num_points=100): Point-MAE reconstructs groups '
        'of that many distinct points')
    cfg.train_dataloader.dataset.pipeline[-2].num_points = 128
    check_model_config(cfg, FULL_CONFIG)  # equal is enough
    check_model_config(_load(STAGE1_CONFIG), 'stage1')  # other models are not asked
    # Through tools/train.py: one "error:" line naming the config and the setting, before the Runner exists.
    rng = np.random.default_rng(0)
    write_label_split(str(tmp_path / 'labels'), [make_frame_arrays(rng, (60, 40), 20) for _ in range(2)])
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(SystemExit) as exit_:
        _train_tool().main([osp.join(REPO, DEMO_CONFIG), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                    f'train_dataloader.dataset.data_root={tmp_path}/labels/',
                    'train_dataloader.dataset.pipeline.4.num_points=50'])
    message = str(exit_.value.code)
    assert message.startswith(f'error: {osp.join(REPO, DEMO_CONFIG)}: model.tokenizer.num_points_per_token=64 '
                              'exceeds the 50 points per scene') and '\n' not in message
    assert not osp.exists(tmp_path / 'work')
    # Batch level (a pipeline that keeps every point): the first batch names the frame's file.
    model = MODELS.build(TINY)
    frames = make_collated_batch(seed=0, region_sizes_per_frame=((40, 30), (4, 2)), num_unassigned=(5, 1))
    frames['data_samples']['metainfo'][1]['label_path'] = 'labels/scene0001_00/000000.npz'
    with pytest.raises(ConfigCheckError, match=r'^labels/scene0001_00/000000.npz: 7 points, fewer than '
                       r'model.tokenizer.num_points_per_token=8 \(Point-MAE'):
        model.loss(frames['inputs'], frames['data_samples'])


# ----------------------------------------------------------------------------------------------- configs
def test_configs_keep_the_scene_settings():
    cfg, stage1 = _load(FULL_CONFIG), _load(STAGE1_CONFIG)
    model = cfg.model
    assert model.type == 'PointMAE' and model.mask_ratio == 0.75
    assert model.tokenizer == dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128)
    assert model.backbone == stage1.model.backbone  # SAM-MTP's encoder, the same config
    assert (model.decoder.num_layers, model.decoder.num_heads, model.decoder.embed_dims) == (2, 4, 256)
    assert model.head.loss.type == 'ChamferL2Loss'
    assert cfg.optim_wrapper.optimizer.lr == 5e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 64
    assert cfg.train_cfg.max_epochs == 120 and cfg.param_scheduler[1].end == 120
    assert cfg.param_scheduler[0].start_factor * 5e-4 == pytest.approx(1e-6)
    assert cfg.train_dataloader.dataset.pipeline[-2] == dict(type='FrameSamplePoints', num_points=20000)
    assert not cfg.train_dataloader.dataset.require_groups
    demo = _load(DEMO_CONFIG)
    assert demo.model.backbone == _load(SYNTHETIC_FINETUNE).model.backbone.encoder
    assert demo.train_dataloader.dataset.data_root == 'data/demo/scannet/sam_mtp_labels/'


def test_full_size_checkpoint_keys_load_strictly_into_the_finetune_encoders(tmp_path):
    """The scene config's checkpoint layout: the encoder under ``backbone.`` with exactly the keys of a SAM-MTP
    stage-1 encoder, plus only ``decoder.`` and ``head.``; it loads strictly into a fine-tuning encoder."""
    model = MODELS.build(_load(FULL_CONFIG).model)
    state = model.state_dict()
    stage1 = MODELS.build(_load(STAGE1_CONFIG).model).state_dict()
    assert {k for k in state if k.startswith('backbone.')} == {k for k in stage1 if k.startswith('backbone.')}
    assert all(k.startswith(('backbone.', 'decoder.', 'head.')) for k in state)
    ckpt = str(tmp_path / 'point_mae.pth')
    torch.save(dict(state_dict=state, meta=dict()), ckpt)
    backbone_cfg = _load(
        'configs/sam_mtp/benchmarks/tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py').model.backbone
    backbone_cfg.init_cfg = dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()  # strict: raises on a missing, unknown or mis-shaped encoder key
    for key, value in backbone.encoder.state_dict().items():
        assert torch.equal(value, state['backbone.' + key]), key


def test_demo_config_trains_one_iteration_and_its_checkpoint_loads_into_finetuning(tmp_path):
    from mmengine.runner import Runner
    cfg = point_mae_one_iteration(_load(DEMO_CONFIG), tmp_path)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        runner = Runner.from_cfg(cfg)
        before = {k: v.clone() for k, v in runner.model.state_dict().items()}
        runner.train()
    assert runner.iter == 1
    state = torch.load(str(tmp_path / 'work' / 'epoch_1.pth'), map_location='cpu', weights_only=False)['state_dict']
    assert any(not torch.equal(v, before[k]) for k, v in state.items() if k.startswith('backbone.'))
    backbone_cfg = _load(SYNTHETIC_FINETUNE).model.backbone
    backbone_cfg.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'work' / 'epoch_1.pth'),
                                 prefix='backbone.')
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()  # strict
    for key, value in backbone.encoder.state_dict().items():
        assert torch.equal(value, state['backbone.' + key]), key
