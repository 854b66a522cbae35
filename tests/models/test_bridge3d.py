"""Bridge3D pretraining: every loss term against a loop over tokens written here, the masking rules, the
stop-gradient of the global queries, the encoder's parameter count against Bridge3D's rebuilt from its source,
one Runner iteration whose checkpoint loads strictly into fine-tuning configs, and the bad-input line."""
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.cpu import CPU_ENV, force_cpu
from helpers.labels import make_frame_arrays, write_label_split
from helpers.runner import one_logged_epoch
from mmdet3d.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from torch import nn

import projects.sam_mtp  # noqa: F401  (registers the modules)
from projects.sam_mtp.datasets import Bridge3DFrameDataset, PackBridge3DInputs, bridge3d_collate
from projects.sam_mtp.labels.formats.frame_labels import LabelFormatError
from projects.sam_mtp.models.algorithms import bridge3d as bridge3d_module
from projects.sam_mtp.models.algorithms.bridge3d import bridge3d_token_mask, semantic_guided_keep
from projects.sam_mtp.models.losses.chamfer import chamfer_l2

init_default_scope('mmdet3d')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FULL_CONFIG = 'configs/sam_mtp/pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py'
DEMO_CONFIG = 'configs/sam_mtp/demo/bridge3d_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'
IMAGE_DIM, TEXT_DIM, POINTS = 8, 6, 8
TEXT_TABLE = np.random.default_rng(7).normal(size=(3, TEXT_DIM)).astype(np.float32)


def _cfg(rel):
    return Config.fromfile(osp.join(REPO, rel))


def tiny_model_cfg(drop_ratio=0.5):
    """The demo config's model at test width: 12 tokens x 8 points, 32-d, 2 encoder blocks, 1 decoder block."""
    model = _cfg(DEMO_CONFIG).model
    model.tokenizer.update(num_tokens=12, num_points_per_token=POINTS)
    model.backbone.update(embed_dims=32, num_layers=2, num_heads=4, pointnet_channels=(16, 32, 32),
                          pos_hidden_dims=16)
    model.global_queries.update(embed_dims=32, num_layers=2, num_heads=4)
    model.decoder.update(in_channels=32, embed_dims=32, num_layers=1, pos_hidden_dims=16)
    for head, dims in (('reconstruction_head', None), ('region_image_head', IMAGE_DIM),
                       ('region_text_head', TEXT_DIM), ('scene_image_head', IMAGE_DIM), ('scene_text_head', TEXT_DIM)):
        model[head].update(in_channels=32)
        if dims:
            model[head].update(out_channels=dims)
    model.drop_ratio = drop_ratio
    return model


def pack_frame(rng, sizes, num_unassigned, region_class):
    arrays = make_frame_arrays(rng, sizes, num_unassigned, feature_dim=IMAGE_DIM)
    region_class = np.asarray(region_class, dtype=np.int64)
    text = np.zeros((len(region_class), TEXT_DIM), dtype=np.float32)
    text[region_class > 0] = TEXT_TABLE[region_class[region_class > 0] - 1]
    return PackBridge3DInputs()(dict(
        points=arrays['points'], point_region=arrays['point_region'].astype(np.int64),
        region_feat=arrays['region_feat'].astype(np.float32), region_group=arrays['region_group'].astype(np.int64),
        region_weight=np.ones(len(sizes), np.float32), num_groups=1, region_class=region_class,
        region_text_feat=text, scene_feat=rng.normal(size=IMAGE_DIM).astype(np.float32),
        caption_feat=rng.normal(size=TEXT_DIM).astype(np.float32)))


@pytest.fixture
def batch():
    """Two frames: 75 points in 4 regions (classes 2, 0, 1, 3) and 10 points in 3 regions (classes 0, 2, 0), so
    the second frame has 10 tokens and 2 padded slots."""
    rng = np.random.default_rng(0)
    return bridge3d_collate([pack_frame(rng, (30, 20, 12, 5), 8, (2, 0, 1, 3)),
                             pack_frame(rng, (4, 3, 2), 1, (0, 2, 0))])


# ------------------------------------------------------------------------------------------ references
def smooth_l1(pred, target):
    diff = (pred - target).abs()
    return torch.where(diff < 1., 0.5 * diff**2, diff - 0.5).mean()


def chamfer_loop(pred, target):
    """Both directions, squared distances, each averaged over its points (Point-MAE's ChamferDistanceL2)."""
    def one_way(a, b):
        return sum(min(float(((p - q)**2).sum()) for q in b) for p in a) / len(a)
    return one_way(pred, target) + one_way(target, pred)


def attention_loop(queries, keys, attn):
    """ReCon's CrossAttention written out: per head softmax(q k^T / sqrt(d)) v, then the output projection."""
    dims = queries.shape[-1]
    heads = attn.num_heads
    head_dims = dims // heads
    q = queries @ attn.q.weight.T
    kv = keys @ attn.kv.weight.T
    k, v = kv[:, :dims], kv[:, dims:]
    out = []
    for h in range(heads):
        part = slice(h * head_dims, (h + 1) * head_dims)
        weights = torch.softmax(q[:, part] @ k[:, part].T / math.sqrt(head_dims), dim=-1)
        out.append(weights @ v[:, part])
    return attn.proj(torch.cat(out, dim=-1))


def reference_losses(model, tokens, masked, kept, samples, rec_on='masked'):
    """Per sample: the encoder on its visible tokens alone, the global queries written out block by block, the
    decoder, then each loss term accumulated over tokens / regions / samples."""
    backbone, queries_branch = model.backbone, model.global_queries
    rec, region_img, region_txt, scene_img, scene_txt = [], {}, [], [], []
    for b in range(tokens.centers.shape[0]):
        real = (~tokens.padding_mask[b]).nonzero()[:, 0].tolist()
        vis = [t for t in real if not masked[b, t]]
        x = backbone.token_embed(tokens.neighborhoods[b, vis])
        pos = backbone.pos_embed(tokens.centers[b, vis])
        keys = []
        for block in backbone.encoder.blocks:
            x = x + pos
            keys.append(block.norm1(x))
            x = block(x[None], None)[0]
        encoded = backbone.encoder.norm(x)
        q = queries_branch.query_tokens[0]
        for block, k in zip(queries_branch.blocks, keys):
            h = block.norm1(q + queries_branch.query_pos[0])
            h = h + attention_loop(h, k, block.attn)
            h = block.norm2(h)
            q = h + block.mlp(h)
        q = backbone.encoder.norm(q)
        scene_img.append(smooth_l1(model.scene_image_head(q[1]), samples['scene_feat'][b]))
        scene_txt.append(smooth_l1(model.scene_text_head(q[2]), samples['caption_feat'][b]))
        index = torch.tensor(vis)[None]
        decoded = model.decoder(encoded[None], index, tokens.centers[b, :len(real)][None],
                                torch.zeros(1, len(real), dtype=torch.bool))[0]
        rec_tokens = [t for t in real if kept[b, t]] if rec_on == 'masked' else vis
        for t in rec_tokens:
            pred = model.reconstruction_head(decoded[t]).reshape(POINTS, 3)
            rec.append(chamfer_loop(pred, tokens.neighborhoods[b, t]))
        for t in vis:
            r = int(tokens.region_index[b, t])
            if r <= 0:
                continue
            region_img.setdefault((b, r), []).append(model.region_image_head(decoded[t]))
            cls = int(samples['region_class'][b, r - 1])
            if cls > 0:
                region_txt.append(smooth_l1(model.region_text_head(decoded[t]), torch.from_numpy(TEXT_TABLE[cls - 1])))
    region_terms = [smooth_l1(torch.stack(preds).mean(0), samples['region_feat'][b, r - 1])
                    for (b, r), preds in region_img.items()]
    return dict(loss_rec=sum(rec) / len(rec), loss_region_img=torch.stack(region_terms).mean(),
                loss_region_text=torch.stack(region_txt).mean(), loss_scene_img=torch.stack(scene_img).mean(),
                loss_scene_text=torch.stack(scene_txt).mean()), len(region_terms), len(region_txt)


# ------------------------------------------------------------------------------------------ tests
def test_chamfer_l2_matches_a_double_loop():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 5, 3, generator=gen), torch.randn(3, 7, 3, generator=gen)
    expected = sum(chamfer_loop(p, t) for p, t in zip(pred, target)) / 3
    assert float(chamfer_l2(pred, target)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('ratio', [0.75, 0.6, 0.3])
def test_token_mask_hides_the_floor_of_the_ratio_of_real_tokens(ratio):
    padding = torch.zeros(3, 12, dtype=torch.bool)
    padding[1, 10:] = True
    padding[2, 7:] = True
    masked = bridge3d_token_mask(padding, ratio, torch.Generator().manual_seed(1))
    for b, num_real in enumerate((12, 10, 7)):
        assert int(masked[b].sum()) == math.floor(ratio * num_real)  # int(mask_ratio * G), as the reference
        assert not masked[b, num_real:].any()
    # Two draws differ: the tokens are chosen at random.
    assert not torch.equal(masked, bridge3d_token_mask(padding, ratio, torch.Generator().manual_seed(2)))


def test_semantic_guided_keep_follows_the_reference_rule():
    """All masked foreground tokens, plus background masked tokens up to num_masked - floor(drop_ratio * M)."""
    gen = torch.Generator().manual_seed(0)
    padding = torch.zeros(4, 20, dtype=torch.bool)
    padding[3, 16:] = True
    masked = bridge3d_token_mask(padding, 0.75, gen)
    foreground = torch.zeros(4, 20, dtype=torch.bool)
    foreground[0, :2] = True   # few foreground tokens: background fills the budget
    foreground[1, :] = True    # all foreground: all masked kept
    foreground[3, :5] = True
    for drop_ratio in (0.7, 0.5):
        kept = semantic_guided_keep(masked, foreground, padding, drop_ratio, gen)
        for b in range(4):
            num_real = int((~padding[b]).sum())
            fg = [t for t in range(20) if masked[b, t] and foreground[b, t]]
            budget = int(masked[b].sum()) - math.floor(drop_ratio * num_real)
            expected_count = max(len(fg), budget)
            assert int(kept[b].sum()) == expected_count, (b, drop_ratio)
            assert all(kept[b, t] for t in fg)
            assert not (kept[b] & ~masked[b]).any()


def test_losses_match_a_loop_reference(batch, monkeypatch):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg()).eval()  # eval: no drop-path, BN running statistics
    tokens = model.tokenize(batch['inputs'])
    assert tokens.padding_mask[1].sum() == 2 and not tokens.padding_mask[0].any()
    gen = torch.Generator().manual_seed(3)
    masked = bridge3d_token_mask(tokens.padding_mask, 0.5, gen)  # enough visible tokens to share regions
    visible_regions = [(int(b), int(tokens.region_index[b, t])) for b, t in
                       ((~masked) & (tokens.region_index > 0)).nonzero().tolist()]
    assert len(visible_regions) > len(set(visible_regions))  # a region mean over several tokens is exercised
    region_class = batch['data_samples']['region_class']
    rows = (tokens.region_index - 1).clamp(min=0)
    foreground = (tokens.region_index > 0) & (region_class.gather(1, rows) > 0)
    kept = semantic_guided_keep(masked, foreground, tokens.padding_mask, 0.25, gen)
    assert (kept & ~foreground).any() and (masked & ~kept).any()  # background kept and dropped
    monkeypatch.setattr(bridge3d_module, 'bridge3d_token_mask', lambda *args, **kwargs: masked)
    monkeypatch.setattr(bridge3d_module, 'semantic_guided_keep', lambda *args, **kwargs: kept)
    with torch.no_grad():
        losses = model.loss(batch['inputs'], batch['data_samples'])
        expected, num_regions, num_text = reference_losses(model, tokens, masked, kept, batch['data_samples'])
        on_visible, _, _ = reference_losses(model, tokens, masked, kept, batch['data_samples'], rec_on='visible')
    for key, value in expected.items():
        torch.testing.assert_close(losses[key], value.float() if torch.is_tensor(value) else
                                   torch.tensor(value, dtype=torch.float32), atol=1e-5, rtol=1e-4, msg=key)
    assert int(losses['reconstructed_tokens']) == int(kept.sum()) and int(losses['masked_tokens']) == int(masked.sum())
    assert int(losses['distilled_regions']) == num_regions and int(losses['text_tokens']) == num_text
    # Mutation check: reconstructing the visible tokens gives another value.
    assert abs(float(on_visible['loss_rec']) - float(losses['loss_rec'])) > 1e-3


def test_model_masks_with_its_mask_ratio(batch):
    for ratio in (0.75, 0.5):
        model = MODELS.build(dict(tiny_model_cfg(), mask_ratio=ratio))
        losses = model.loss(batch['inputs'], batch['data_samples'])
        assert int(losses['masked_tokens']) == math.floor(ratio * 12) + math.floor(ratio * 10)
        assert all(torch.isfinite(v) for k, v in losses.items() if k.startswith('loss'))


def test_global_queries_read_the_patch_tokens_through_a_stop_gradient(batch):
    """The scene losses train the queries and the shared final LayerNorm, never the patch stream (ReCon's
    ``attn_contrast(cls, vis_x.detach())``); the other losses do train it."""
    torch.manual_seed(1)
    model = MODELS.build(tiny_model_cfg())
    losses = model.loss(batch['inputs'], batch['data_samples'])
    (losses['loss_scene_img'] + losses['loss_scene_text']).backward(retain_graph=True)
    patch_stream = {n: p for n, p in model.backbone.named_parameters() if not n.startswith('encoder.norm.')}
    assert all(p.grad is None or not p.grad.any() for p in patch_stream.values()), \
        [n for n, p in patch_stream.items() if p.grad is not None and p.grad.any()]
    assert model.backbone.encoder.norm.weight.grad.abs().sum() > 0
    assert model.global_queries.blocks[0].attn.kv.weight.grad.abs().sum() > 0
    assert model.global_queries.query_tokens.grad[0, 0].abs().sum() == 0  # the cls query has no loss
    model.zero_grad()
    (losses['loss_rec'] + losses['loss_region_img']).backward()
    assert model.backbone.token_embed.first[0].weight.grad.abs().sum() > 0


def test_missing_targets_and_bad_settings_are_named(batch):
    model = MODELS.build(tiny_model_cfg())
    samples = {k: v for k, v in batch['data_samples'].items() if k != 'caption_feat'}
    with pytest.raises(ValueError, match=r"Bridge3D: data_samples must hold .*caption_feat"):
        model.loss(batch['inputs'], samples)
    with pytest.raises(ValueError, match='global_queries.num_layers=3 but the encoder has 2 blocks'):
        MODELS.build(dict(tiny_model_cfg(), global_queries=dict(tiny_model_cfg().global_queries, num_layers=3)))
    with pytest.raises(ValueError, match=r'out_channels=12 but the tokens have 8 points \(needs 24\)'):
        MODELS.build(dict(tiny_model_cfg(), reconstruction_head=dict(type='TokenProjector', in_channels=32,
                                                                     out_channels=12)))


# ------------------------------------------------------------------------------------------ reference size
def _reference_block(dims, mlp_ratio, with_contrast):
    """Bridge3D transformer.py ``Block``: norm1, Attention(qkv no bias, proj), norm2, Mlp(fc1, fc2); with_contrast
    adds norm1_contrast, norm2_contrast, mlp_contrast and CrossAttention(q, kv no bias, proj)."""
    hidden = int(dims * mlp_ratio)
    parts = [nn.LayerNorm(dims), nn.Linear(dims, 3 * dims, bias=False), nn.Linear(dims, dims), nn.LayerNorm(dims),
             nn.Linear(dims, hidden), nn.Linear(hidden, dims)]
    if with_contrast:
        parts += [nn.LayerNorm(dims), nn.LayerNorm(dims), nn.Linear(dims, hidden), nn.Linear(hidden, dims),
                  nn.Linear(dims, dims, bias=False), nn.Linear(dims, 2 * dims, bias=False), nn.Linear(dims, dims)]
    return nn.ModuleList(parts)


def reference_recon(trans_dim=256, depth=3, decoder_depth=2, group_size=128, img_dim=1024, text_dim=512):
    """ReCon of Bridge3D's Pretrain/models/ReCon.py at base.yaml's settings, trainable parts rebuilt layer by layer
    (frozen img/text encoders and the switched-off self-contrastive head are not built by the config)."""
    c = trans_dim
    encoder = nn.ModuleDict(dict(
        group_embed=nn.ModuleList([nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.Conv1d(128, 256, 1),
                                   nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.Conv1d(512, c, 1)]),
        pos_embed=nn.ModuleList([nn.Linear(3, 128), nn.Linear(128, c)]),
        blocks=nn.ModuleList([_reference_block(c, 2., True) for _ in range(depth)]),
        norm=nn.LayerNorm(c)))
    encoder.global_tokens = nn.Parameter(torch.zeros(6, c))  # cls/img/text token and cls/img/text pos
    rest = nn.ModuleDict(dict(
        decoder_pos_embed=nn.ModuleList([nn.Linear(3, 128), nn.Linear(128, c)]),
        decoder=nn.ModuleList([_reference_block(c, 2., False) for _ in range(decoder_depth)] + [nn.LayerNorm(c)]),
        increase_dim=nn.Conv1d(c, 3 * group_size, 1), img_proj=nn.Linear(c, img_dim), text_proj=nn.Linear(c, text_dim),
        rec_head_2d=nn.Conv1d(256, img_dim, 1), rec_head_txt=nn.Conv1d(256, text_dim, 1)))
    rest.mask_token = nn.Parameter(torch.zeros(1, 1, c))
    return encoder, rest


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_encoder_parameter_count_equals_bridge3d():
    cfg = _cfg(FULL_CONFIG).model
    model = MODELS.build(cfg)
    reference_encoder, reference_rest = reference_recon()
    ours = _count(model.backbone) + _count(model.global_queries)
    assert ours == _count(reference_encoder) == 3_622_400  # by hand: 428,800 + 33,536 + 1,536 + 3 x 1,052,672 + 512
    # The whole trainable model too, with Bridge3D's 1024-d DINOv2-L image targets instead of our 768-d ViT-B.
    for head in ('region_image_head', 'scene_image_head'):
        cfg[head].out_channels = 1024
    model = MODELS.build(cfg)
    assert _count(model) == _count(reference_encoder) + _count(reference_rest)


# ------------------------------------------------------------------------------------------ data and Runner
def write_bridge3d_split(root, num_frames=2, with_text=True, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(num_frames):
        arrays = make_frame_arrays(rng, (60, 40, 30), 20, feature_dim=64)
        if with_text:
            arrays.update(region_class=np.array([1, 0, 2], np.int32),
                          caption_feat=rng.normal(size=32).astype(np.float16))
        frames.append(arrays)
    extra = dict(class_names=['chair', 'table'], class_text_feat=rng.normal(size=(2, 32)).astype(np.float32)) \
        if with_text else None
    return write_label_split(root, frames, with_groups=False, extra_metainfo=extra)


def test_dataset_targets_and_refusals(tmp_path):
    info = write_bridge3d_split(str(tmp_path / 'ok'))
    dataset = Bridge3DFrameDataset(ann_file=info, data_root=str(tmp_path / 'ok'), require_groups=False,
                                   pipeline=[dict(type='PackBridge3DInputs')])
    item = dataset[0]['data_samples']
    meta = dataset.metainfo
    frame = np.load(str(tmp_path / 'ok' / 'scene0000_00' / '000000.npz'))
    np.testing.assert_array_equal(item['region_class'].numpy(), [1, 0, 2])
    torch.testing.assert_close(item['region_text_feat'][0], torch.from_numpy(meta['class_text_feat'][0]))
    assert not item['region_text_feat'][1].any()
    area = frame['region_area'].astype(np.float64)
    expected_scene = (frame['region_feat'].astype(np.float64) * area[:, None]).sum(0) / area.sum()
    np.testing.assert_allclose(item['scene_feat'].numpy(), expected_scene, rtol=1e-5, atol=1e-6)
    # Labels without the text targets are refused when the dataset is built, naming the file.
    plain = write_bridge3d_split(str(tmp_path / 'plain'), with_text=False)
    with pytest.raises(LabelFormatError, match=r"train_labels\.pkl: metainfo has no \['class_names', "
                                               r"'class_text_feat'\]"):
        Bridge3DFrameDataset(ann_file=plain, require_groups=False)
    rng = np.random.default_rng(1)
    no_arrays = write_label_split(str(tmp_path / 'half'), [make_frame_arrays(rng, (30, 20), 5, feature_dim=64)],
                                  with_groups=False, extra_metainfo=dict(
                                      class_names=['chair'], class_text_feat=np.zeros((1, 32), np.float32)))
    with pytest.raises(LabelFormatError, match=r"scene0000_00.000000\.npz: has no \['region_class', "
                                               r"'caption_feat'\]"):
        Bridge3DFrameDataset(ann_file=no_arrays, data_root=str(tmp_path / 'half'), require_groups=False)


def _tiny_runner_cfg(data_root, work_dir):
    cfg = _cfg(DEMO_CONFIG)
    cfg.model.tokenizer.update(num_tokens=16, num_points_per_token=16)
    return one_logged_epoch(cfg, data_root, work_dir)


def test_demo_config_trains_one_iteration_and_its_encoder_loads_into_finetuning(tmp_path, monkeypatch):
    from mmengine.runner import Runner
    force_cpu(monkeypatch)
    data_root = str(tmp_path / 'labels')
    write_bridge3d_split(data_root)
    cfg = _tiny_runner_cfg(data_root, str(tmp_path / 'work'))
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        runner = Runner.from_cfg(cfg)
        runner.train()
    assert runner.iter == 1
    ckpt = str(tmp_path / 'work' / 'epoch_1.pth')
    state = torch.load(ckpt, map_location='cpu', weights_only=False)['state_dict']
    encoder = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    others = {k.split('.')[0] for k in state if not k.startswith('backbone.')}
    assert others == {'global_queries', 'decoder', 'reconstruction_head', 'region_image_head', 'region_text_head',
                      'scene_image_head', 'scene_text_head'}
    for rel in ('configs/sam_mtp/demo/tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py',
                'configs/sam_mtp/demo/threedetr_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py'):
        backbone_cfg = _cfg(rel).model.backbone
        backbone_cfg.init_cfg = dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
        backbone = MODELS.build(backbone_cfg)
        backbone.init_weights()  # strict: raises on any missing, unknown or mis-shaped encoder key
        loaded = backbone.encoder.state_dict()
        assert set(loaded) == set(encoder), rel
        for key, value in encoder.items():
            assert torch.equal(loaded[key], value), (rel, key)


def test_full_config_encoder_loads_into_every_real_finetuning_config(tmp_path):
    model = MODELS.build(_cfg(FULL_CONFIG).model)
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    ckpt = str(tmp_path / 'bridge3d.pth')
    torch.save(dict(state_dict=state, meta=dict()), ckpt)
    # The pretrained ScanNet rows: <head>_plain-transformer-sam-mtp_<NxB-schedule>_scannet-{3d,seg}.py.
    configs = [c for c in sorted(os.listdir(osp.join(REPO, 'configs/sam_mtp/benchmarks')))
               if '_plain-transformer-sam-mtp_' in c and c.endswith(('_scannet-3d.py', '_scannet-seg.py'))]
    assert len(configs) == 3, configs  # 3DETR, GroupFree3D, segmentation
    for name in configs:
        backbone_cfg = _cfg(f'configs/sam_mtp/benchmarks/{name}').model.backbone
        backbone_cfg.init_cfg = dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')
        backbone = MODELS.build(backbone_cfg)
        backbone.init_weights()
        assert torch.equal(backbone.encoder.state_dict()['encoder.norm.weight'], state['backbone.encoder.norm.weight'])


def test_train_tool_refuses_labels_without_text_targets_in_one_line(tmp_path):
    data_root = str(tmp_path / 'labels')
    write_bridge3d_split(data_root, with_text=False)
    work_dir = str(tmp_path / 'work')
    cmd = [sys.executable, osp.join(REPO, 'tools/train.py'), osp.join(REPO, DEMO_CONFIG), '--work-dir', work_dir,
           '--cfg-options', f'train_dataloader.dataset.data_root={data_root}/']
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, osp.join(REPO, 'tests')]), **CPU_ENV)
    proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"error: {data_root}/train_labels.pkl: metainfo has no ['class_names', 'class_text_feat']: "
                    'Bridge3D needs the text targets; add them to the labels with tools/add_text_labels.py '
                    '(docs/pretraining.md, "Bridge3D pretraining")'), proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert not [f for f in os.listdir(work_dir) if f.endswith('.pth')] if osp.isdir(work_dir) else True
