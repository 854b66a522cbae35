"""3DETR configs: they build, carry 3DETR's recipe (facebookresearch/3detr scripts and datasets), and the paper's
Table 1 rows ("3DETR", "+ Plain Transformer", "+ Ours") differ only where the paper says they differ."""
import glob
import math
import os.path as osp

import pytest
import torch
from helpers.configs import flatten
from helpers.segmentation import segmentation_loss_backward
from mmdet3d.registry import MODELS, TRANSFORMS
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from test_3detr_helpers import data_sample, synthetic_scene

import projects.sam_mtp  # noqa: F401  (registers modules and installs the CPU point ops: must import, not skip)
import projects.sam_mtp.ops  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCHMARKS = osp.join(REPO, 'configs', 'sam_mtp', 'benchmarks')
CONFIGS = sorted(glob.glob(osp.join(BENCHMARKS, '*.py')))
# Table 1's 3DETR rows: baseline, "+ Plain Transformer" (random init), "+ Ours" (pretrained).
TABLE1_3DETR = {
    'scannet': ('benchmarks/threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py',
                'benchmarks/threedetr_plain-transformer_1xb8-1080e_scannet-3d.py',
                'benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py'),
    'sunrgbd': ('benchmarks/threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py',
                'benchmarks/threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py',
                'benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_sunrgbd-3d.py'),
}
# What a run depends on (the helper variables of the bases, e.g. the tokenizer presets, are not).
RUN_KEYS = ('model', 'optim_wrapper', 'param_scheduler', 'train_cfg', 'val_cfg', 'test_cfg', 'train_dataloader',
            'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator', 'default_hooks',
            'auto_scale_lr', 'randomness', 'env_cfg', 'custom_imports')


def load(rel):
    return Config.fromfile(osp.join(REPO, 'configs', 'sam_mtp', rel))


def costs(cfg):
    return {c['type']: c for c in cfg.model.train_cfg.assigner.match_costs}


def train_pipeline(cfg):
    return cfg.train_dataloader.dataset.dataset.pipeline


def run_settings(cfg, drop_transforms=()):
    """The run-relevant settings of a config, flattened, with the named transforms removed from pipelines."""
    settings = {}
    for key in RUN_KEYS:
        value = cfg.to_dict().get(key)
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if key == loader and value is not None:
                dataset = value['dataset'].get('dataset', value['dataset'])
                dataset['pipeline'] = [t for t in dataset['pipeline'] if t['type'] not in drop_transforms]
        settings.update(flatten(value, key))
    return settings


def differing(a, b):
    return sorted(k for k in set(a) | set(b) if a.get(k, '<absent>') != b.get(k, '<absent>'))


def test_there_are_configs():
    names = {osp.basename(c) for c in CONFIGS}
    assert {'threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py', 'threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py',
            'threedetr-m_masked-encoder_1xb8-1080e_scannet-3d.py',
            'threedetr-m_masked-encoder_1xb8-1080e_sunrgbd-3d.py',
            'groupfree3d_pointnet2-ssg_4xb8-80e_sunrgbd-3d.py'} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_downstream_pipeline_builds(path):
    """(tests/test_configs.py builds every config's model.)"""
    cfg = Config.fromfile(path)
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        for transform in dataset.get('dataset', dataset).pipeline:
            TRANSFORMS.build(transform)


def test_scannet_baseline_is_3detrs_scannet_recipe():
    cfg = load('benchmarks/threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py')
    enc = cfg.model.backbone
    assert enc.type == 'ThreeDETREncoder' and enc.in_channels == 3
    assert (enc.num_points, enc.radius, enc.num_samples, tuple(enc.sa_channels)) == (2048, 0.2, 64, (64, 128, 256))
    assert (enc.num_layers, enc.num_heads, enc.feedforward_channels, enc.dropout) == (3, 4, 128, 0.1)
    head = cfg.model.bbox_head
    # datasets/scannet.py: num_angle_bin = 1 (heading heads and losses, heading 0); main.py's angle loss weights.
    assert (head.num_queries, head.num_angle_bins, head.no_object_weight, head.query_source) == (256, 1, 0.25, 'fps')
    assert (head.loss_angle_cls.loss_weight, head.loss_angle_reg.loss_weight) == (0.1, 0.5)
    assert (head.num_decoder_layers, head.embed_dims, head.num_heads, head.feedforward_channels) == (8, 256, 4, 256)
    assert (head.dropout, head.mlp_dropout, head.num_memory_proj_hidden) == (0.1, 0.3, 2)
    assert head.loss_giou.loss_weight == 1.0 and head.loss_center.loss_weight == 5.0
    assert head.loss_size.loss_weight == 1.0 and head.loss_cls.loss_weight == 1.0
    assert {k: v['weight'] for k, v in costs(cfg).items()} == {'mmdet.ClassificationCost': 1.0, 'BBox3DGIoUCost': 2.0}
    assert cfg.optim_wrapper.optimizer.lr == 5e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.1
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1 and cfg.train_cfg.max_epochs == 1080
    warmup, cosine = cfg.param_scheduler
    assert warmup.start_factor * 5e-4 == pytest.approx(1e-6) and warmup.end == 9 and cosine.eta_min == 1e-6
    assert cfg.train_dataloader.batch_size == 8 and cfg.train_dataloader.dataset.times == 1
    # 3DETR's datasets/scannet.py: random cuboid (30k points, crop 0.5-1, aspect 0.8), sampling, flips, rotation.
    order = [t['type'] for t in train_pipeline(cfg)]
    assert order.index('RandomCuboidCrop') < order.index('PointSample') < order.index('RandomFlip3D') \
        < order.index('GlobalRotScaleTrans')
    cuboid = [t for t in train_pipeline(cfg) if t['type'] == 'RandomCuboidCrop'][0]
    assert (cuboid['min_points'], tuple(cuboid['crop_factor']), cuboid['min_aspect']) == (30000, (0.5, 1.0), 0.8)
    assert [t for t in train_pipeline(cfg) if t['type'] == 'PointSample'][0]['num_points'] == 40000
    # rot_angle = random() * pi / 18 - pi / 36: -5 to +5 deg about z, no scaling (SUN RGB-D has +-30 deg).
    rotation = [t for t in train_pipeline(cfg) if t['type'] == 'GlobalRotScaleTrans'][0]
    assert rotation['rot_range'] == pytest.approx([-math.pi / 36, math.pi / 36], abs=1e-6)
    assert rotation['scale_ratio_range'] == [1.0, 1.0]


SUN_3DETR_CONFIGS = ['benchmarks/threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py',
                     'benchmarks/threedetr-m_masked-encoder_1xb8-1080e_sunrgbd-3d.py',
                     'benchmarks/threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py',
                     'benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_sunrgbd-3d.py',
                     'ablations/threedetr_plain-transformer-sam-tokens_1xb8-1080e_sunrgbd-3d.py']


@pytest.mark.parametrize('rel', SUN_3DETR_CONFIGS)
def test_sunrgbd_configs_follow_3detrs_sunrgbd_recipe(rel):
    """(d) 3DETR's datasets/sunrgbd.py: flip, rotation (+-30 deg), scale (0.85-1.15), THEN the random cuboid
    (RandomCuboid(min_points=30000, aspect=0.75, min_crop=0.75, max_crop=1.0)), then sampling 20k points."""
    cfg = load(rel)
    order = [t['type'] for t in train_pipeline(cfg) if t['type'] != 'LoadSceneSegments']
    assert order == ['LoadPointsFromFile', 'LoadAnnotations3D', 'RandomFlip3D', 'GlobalRotScaleTrans',
                     'RandomCuboidCrop', 'PointSample', 'Pack3DDetInputs']
    by_type = {t['type']: t for t in train_pipeline(cfg)}
    flip, rot, cuboid = by_type['RandomFlip3D'], by_type['GlobalRotScaleTrans'], by_type['RandomCuboidCrop']
    assert flip['flip_ratio_bev_horizontal'] == 0.5 and flip.get('flip_ratio_bev_vertical', 0.0) == 0.0
    assert rot['rot_range'] == pytest.approx([-math.pi / 6, math.pi / 6], abs=1e-6)
    assert rot['scale_ratio_range'] == [0.85, 1.15]
    assert (cuboid['min_points'], tuple(cuboid['crop_factor']), cuboid['min_aspect']) == (30000, (0.75, 1.0), 0.75)
    assert by_type['PointSample']['num_points'] == 20000
    head = cfg.model.bbox_head
    assert (head.num_classes, head.num_queries, head.num_angle_bins, head.no_object_weight) == (10, 128, 12, 0.1)
    assert head.loss_giou.loss_weight == 0.0
    assert (head.loss_angle_cls.loss_weight, head.loss_angle_reg.loss_weight) == (0.1, 0.5)
    assert {k: v['weight'] for k, v in costs(cfg).items()} == {
        'mmdet.ClassificationCost': 1.0, 'BBox3DGIoUCost': 3.0, 'BBox3DCenterL1Cost': 5.0,
        'BBox3DObjectnessCost': 5.0}
    # 3DETR's GIoU encloses both boxes in a world-axis-aligned box.
    assert costs(cfg)['BBox3DGIoUCost'].get('enclosing', 'aligned') == 'aligned'
    assert cfg.optim_wrapper.optimizer.lr == 7e-4
    assert cfg.param_scheduler[0]['start_factor'] == pytest.approx(1e-6 / 7e-4)


def test_masked_variants_are_3detr_m():
    scannet, sun = load('benchmarks/threedetr-m_masked-encoder_1xb8-1080e_scannet-3d.py'), \
        load('benchmarks/threedetr-m_masked-encoder_1xb8-1080e_sunrgbd-3d.py')
    for cfg in (scannet, sun):
        assert cfg.model.backbone.type == 'ThreeDETRMaskedEncoder'
        assert cfg.model.bbox_head.num_memory_proj_hidden == 1
    encoder = MODELS.build(scannet.model.backbone)
    assert encoder.masking_radius == pytest.approx([0.16, 0.64, 1.44])
    assert encoder.downsample.num_point == [1024]
    assert scannet.model.backbone.dropout == 0.3 and sun.model.backbone.get('dropout', 0.1) == 0.1
    assert sun.model.bbox_head.loss_cls.loss_weight == 0.8 and scannet.model.bbox_head.loss_cls.loss_weight == 1.0


@pytest.mark.parametrize('dataset', list(TABLE1_3DETR))
def test_table1_rows_differ_only_where_the_paper_says(dataset):
    baseline, plain, ours = (load(rel) for rel in TABLE1_3DETR[dataset])
    # "+ Plain Transformer" replaces 3DETR's encoder by the plain transformer on Bridge3D's kNN tokens.
    diff = differing(run_settings(baseline), run_settings(plain))
    assert diff and all(k.startswith('model.backbone.') for k in diff), diff
    assert plain.model.backbone.type == 'SamMtpPointBackbone' and plain.model.backbone.get('init_cfg') is None
    assert plain.model.backbone.tokenizer == dict(type='FPSKNNTokenizer', num_tokens=2048, num_points_per_token=128)
    assert plain.model.backbone.encoder.pos_every_block is False
    # "+ Ours": pretrained encoder, SAM-guided tokens (from the scene segments) and SAM tokens as queries.
    diff = differing(run_settings(plain, drop_transforms=('LoadSceneSegments', )),
                     run_settings(ours, drop_transforms=('LoadSceneSegments', )))
    allowed = ('model.backbone.tokenizer.', 'model.backbone.init_cfg.')
    allowed_keys = {'model.backbone.in_channels', 'model.backbone.segment_channel', 'model.bbox_head.query_source',
                    'model.backbone.init_cfg'}
    assert all(k.startswith(allowed) or k in allowed_keys for k in diff), diff
    assert ours.model.bbox_head.query_source == 'tokens' and ours.model.backbone.tokenizer.type == 'SAMGuidedTokenizer'
    assert ours.model.backbone.init_cfg.type == 'Pretrained'
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset_cfg = getattr(ours, loader).dataset
        pipeline = dataset_cfg.get('dataset', dataset_cfg).pipeline
        assert [t['type'] for t in pipeline][:2] == ['LoadPointsFromFile', 'LoadSceneSegments']


def test_every_parameter_is_decayed_as_in_3detr_and_bridge3d():
    """Bridge3D's 3DETR fine-tuning (Downstream/3detr/optimizer.py) keeps 3DETR's --filter_biases_wd off: one
    AdamW group, weight decay 0.1 on every parameter, norms and biases included."""
    for rel in [r for rows in TABLE1_3DETR.values() for r in rows]:
        optim = load(rel).optim_wrapper
        assert 'paramwise_cfg' not in optim and optim.optimizer.weight_decay == 0.1, rel
    cfg = load(TABLE1_3DETR['scannet'][2])
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = wrapper.optimizer.param_groups
    decays = {g['weight_decay'] for g in groups}
    assert decays == {0.1}
    assert sum(len(g['params']) for g in groups) == len(list(model.parameters()))


def test_3detr_detector_with_3detr_encoder_trains_and_predicts():
    torch.manual_seed(0)
    cfg = load('benchmarks/threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py')
    cfg.model.backbone.update(num_points=64, num_samples=8)
    cfg.model.bbox_head.update(num_classes=3, num_queries=16, num_decoder_layers=2)
    model = MODELS.build(cfg.model)
    points, boxes, labels = synthetic_scene(0, num_points=512)
    data = dict(inputs=dict(points=[points, points.clone()]),
                data_samples=[data_sample(boxes, labels), data_sample(boxes, labels)])
    losses = model(**model.data_preprocessor(data, training=True), mode='loss')
    assert {'loss_cls', 'loss_giou', 'd0.loss_cls'} <= set(losses)
    sum(losses.values()).backward()
    assert model.backbone.set_abstraction.mlps[0].layer0.conv.weight.grad.abs().sum() > 0
    assert model.backbone.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        result = model(**model.data_preprocessor(data, training=False), mode='predict')[0]
    assert len(result.pred_instances_3d.bboxes_3d) == len(result.pred_instances_3d.scores_3d) > 0


def test_segmentation_config_runs_loss_with_pointnet2():
    torch.manual_seed(0)
    cfg = load('benchmarks/tokeninterp_pointnet2-ssg_2xb16-200e_scannet-seg.py')
    model = MODELS.build(cfg.model)
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(2048, 6, generator=gen) * torch.tensor([3.0, 3.0, 2.0, 1.0, 1.0, 1.0])
    segmentation_loss_backward(model, points, 20, gen)
    assert model.backbone.FP_modules[-1].mlps.layer0.conv.weight.grad.abs().sum() > 0
