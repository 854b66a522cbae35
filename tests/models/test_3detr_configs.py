"""Downstream configs: load, build, carry the paper's settings, and run end to end with mmdet3d's PointNet++."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from test_3detr_helpers import data_sample, synthetic_scene

import projects.sam_mtp.datasets.random_cuboid  # noqa: F401
from mmdet3d.registry import MODELS, TRANSFORMS

CONFIG_DIR = osp.join(osp.dirname(__file__), '..', '..', 'configs', 'sam_mtp', 'downstream')
CONFIGS = sorted(glob.glob(osp.join(CONFIG_DIR, '*.py')))


def load(name):
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def costs(cfg):
    return {c['type']: c for c in cfg.model.train_cfg.assigner.match_costs}


def test_there_are_configs():
    assert len(CONFIGS) >= 3


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_config_loads_and_builds(path):
    cfg = Config.fromfile(path)
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    for transform in cfg.train_dataloader.dataset.get('dataset', cfg.train_dataloader.dataset).pipeline:
        TRANSFORMS.build(transform)


def test_scannet_settings_match_3detr_scannet_recipe():
    cfg = load('threedetr_pointnet2_1xb8-1080e_scannet-3d.py')
    head = cfg.model.bbox_head
    assert (head.num_queries, head.num_angle_bins, head.no_object_weight) == (256, 0, 0.25)
    assert (head.num_decoder_layers, head.embed_dims, head.num_heads, head.feedforward_channels) == (8, 256, 4, 256)
    assert (head.dropout, head.mlp_dropout) == (0.1, 0.3)
    assert head.loss_giou.loss_weight == 1.0 and head.loss_center.loss_weight == 5.0
    assert {k: v['weight'] for k, v in costs(cfg).items()} == {'mmdet.ClassificationCost': 1.0, 'BBox3DGIoUCost': 2.0}
    assert cfg.optim_wrapper.optimizer.lr == 5e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.1
    assert cfg.optim_wrapper.clip_grad.max_norm == 0.1 and cfg.train_cfg.max_epochs == 1080
    assert cfg.train_dataloader.batch_size == 8
    cuboid = [t for t in cfg.train_pipeline if t['type'] == 'RandomCuboidCrop'][0]
    assert cuboid['min_points'] == 30000
    assert [t for t in cfg.train_pipeline if t['type'] == 'PointSample'][0]['num_points'] == 40000


def test_sunrgbd_settings_match_3detr_sunrgbd_recipe():
    cfg = load('threedetr_pointnet2_1xb8-1080e_sunrgbd-3d.py')
    head = cfg.model.bbox_head
    assert (head.num_classes, head.num_queries, head.num_angle_bins, head.no_object_weight) == (10, 128, 12, 0.1)
    assert head.loss_giou.loss_weight == 0.0
    assert {k: v['weight'] for k, v in costs(cfg).items()} == {
        'mmdet.ClassificationCost': 1.0, 'BBox3DGIoUCost': 3.0, 'BBox3DCenterL1Cost': 5.0,
        'BBox3DObjectnessCost': 5.0}
    assert cfg.optim_wrapper.optimizer.lr == 7e-4
    assert cfg.param_scheduler[0]['start_factor'] == pytest.approx(1e-6 / 7e-4)


def _cpu_point_ops_available():
    try:
        import projects.sam_mtp.ops  # noqa: F401  (installs CPU fallbacks of mmcv's point ops)
        return True
    except ImportError:
        return False


@pytest.mark.skipif(not _cpu_point_ops_available(), reason='needs projects.sam_mtp.ops (CPU point ops)')
def test_scannet_config_runs_loss_and_predict_with_pointnet2():
    torch.manual_seed(0)
    cfg = load('threedetr_pointnet2_1xb8-1080e_scannet-3d.py')
    cfg.model.bbox_head.update(num_classes=3, num_queries=32, num_decoder_layers=2)
    model = MODELS.build(cfg.model)
    points, boxes, labels = synthetic_scene(0, num_points=4096)
    data = dict(inputs=dict(points=[points]), data_samples=[data_sample(boxes, labels)])
    losses = model(**model.data_preprocessor(data, training=True), mode='loss')
    assert {'loss_cls', 'loss_giou', 'd0.loss_cls'} <= set(losses)
    sum(losses.values()).backward()
    assert model.backbone.SA_modules[0].mlps[0].layer0.conv.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        result = model(**model.data_preprocessor(data, training=False), mode='predict')[0]
    assert len(result.pred_instances_3d.bboxes_3d) == len(result.pred_instances_3d.scores_3d)


@pytest.mark.skipif(not _cpu_point_ops_available(), reason='needs projects.sam_mtp.ops (CPU point ops)')
def test_segmentation_config_runs_loss_with_pointnet2():
    from mmdet3d.structures import Det3DDataSample, PointData
    torch.manual_seed(0)
    cfg = load('tokeninterp_pointnet2_2xb16-cosine-200e_scannet-seg.py')
    model = MODELS.build(cfg.model)
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(2048, 6, generator=gen) * torch.tensor([3.0, 3.0, 2.0, 1.0, 1.0, 1.0])
    sample = Det3DDataSample()
    sample.gt_pts_seg = PointData(pts_semantic_mask=torch.randint(0, 20, (2048, ), generator=gen))
    data = dict(inputs=dict(points=[points, points.clone()]), data_samples=[sample, sample])
    losses = model(**model.data_preprocessor(data, training=True), mode='loss')
    assert torch.isfinite(losses['decode.loss_sem_seg'])
    losses['decode.loss_sem_seg'].backward()
    assert model.backbone.FP_modules[-1].mlps.layer0.conv.weight.grad.abs().sum() > 0
