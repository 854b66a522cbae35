"""Acceptance: mmdet3d's own VoteNet and GroupFree3D (ScanNet configs) train
and predict on the CPU once ``projects.sam_mtp.ops`` is imported.

Without the fallbacks both die in ``furthest_point_sample`` ("type
torch.cuda.IntTensor not available"). Point counts are shrunk so that a
loss + backward + predict round takes seconds.
"""
import collections
import os.path as osp

import pytest
import torch

import projects.sam_mtp.ops as sam_ops
from projects.sam_mtp.ops import dispatch

mmdet3d = pytest.importorskip('mmdet3d')
from mmdet3d.registry import MODELS  # noqa: E402
from mmdet3d.structures import (  # noqa: E402
    DepthInstance3DBoxes,
    Det3DDataSample,  # noqa: E402
    PointData,
)
from mmdet3d.utils import register_all_modules  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

NUM_CLASSES = 18  # ScanNet detection classes of both configs
CONFIG_ROOT = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'configs')


def _config(relative_path):
    path = osp.join(CONFIG_ROOT, relative_path)
    if not osp.exists(path):
        pytest.skip(f'mmdet3d config not installed: {relative_path}')
    return Config.fromfile(path)


def _shrink_backbone(model_cfg):
    backbone = model_cfg.backbone
    backbone.num_points = (256, 128, 64, 32)
    backbone.num_samples = (16, 16, 8, 8)


def _scene(seed, num_points, with_height):
    """A 4 x 4 x 2.5 m room with three objects (axis-aligned ScanNet boxes:
    gravity-centre input, no yaw) whose points carry the instance and
    semantic masks that the ScanNet heads read."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[1.0, 1.0, 0.5], [3.0, 1.5, 0.6], [2.0, 3.0, 0.8]])
    sizes = torch.tensor([[0.8, 0.6, 1.0], [1.2, 0.8, 1.2], [0.6, 0.6, 1.6]])
    centres = centres + 0.1 * torch.rand(3, 3, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (3, ), generator=g)
    per_object = num_points // 6
    object_points = [
        centre + (torch.rand(per_object, 3, generator=g) - 0.5) * size * 0.9
        for centre, size in zip(centres, sizes)
    ]
    background = torch.rand(
        num_points - 3 * per_object, 3, generator=g) * torch.tensor(
            [4.0, 4.0, 2.5])
    xyz = torch.cat(object_points + [background])
    instance = torch.cat([torch.full((per_object, ), i + 1)
                          for i in range(3)] +
                         [torch.zeros(len(background), dtype=torch.long)])
    semantic = torch.cat(
        [torch.full((per_object, ), int(label))
         for label in labels] + [torch.full((len(background), ), NUM_CLASSES)])
    # Background points inside a box belong to it (as in an annotated scan).
    boxes = DepthInstance3DBoxes(
        torch.cat([centres, sizes], 1),
        box_dim=6,
        with_yaw=False,
        origin=(0.5, 0.5, 0.5))
    inside = boxes.points_in_boxes_part(xyz)
    instance = torch.where(inside >= 0, inside + 1, instance)
    semantic = torch.where(inside >= 0, labels[inside.clamp(min=0)], semantic)
    points = xyz
    if with_height:  # VoteNet's 4th channel: height above the floor
        points = torch.cat([xyz, xyz[:, 2:] - xyz[:, 2].min()], 1)
    sample = Det3DDataSample(
        metainfo=dict(box_type_3d=DepthInstance3DBoxes, sample_idx=seed))
    sample.gt_instances_3d = InstanceData(bboxes_3d=boxes, labels_3d=labels)
    sample.gt_pts_seg = PointData(
        pts_semantic_mask=semantic, pts_instance_mask=instance)
    return points, sample


def _batch(with_height):
    scenes = [_scene(seed, 2048, with_height) for seed in (0, 1)]
    return {'points': [p for p, _ in scenes]}, [s for _, s in scenes]


def _check_round(model, with_height, op_calls, predict_per_scene=False):
    torch.manual_seed(0)
    inputs, samples = _batch(with_height)
    op_calls.clear()  # count the model's calls only
    model.train()
    losses = model.loss(inputs, samples)
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total), losses
    total.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads, 'no gradient reached the backbone'
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    model.eval()
    with torch.no_grad():
        if predict_per_scene:
            results = [
                model.predict({'points': [points]}, [sample])[0]
                for points, sample in zip(inputs['points'], samples)
            ]
        else:
            results = model.predict(inputs, samples)
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances_3d
        assert isinstance(pred.bboxes_3d, DepthInstance3DBoxes)
        assert len(pred.bboxes_3d) == len(pred.scores_3d) == \
            len(pred.labels_3d)
        assert pred.bboxes_3d.tensor.shape[1] == 7
        assert torch.isfinite(pred.bboxes_3d.tensor).all()
        if len(pred.labels_3d):
            assert int(pred.labels_3d.max()) < NUM_CLASSES
    return losses


@pytest.fixture(scope='module', autouse=True)
def mmdet3d_scope():
    register_all_modules(init_default_scope=False)
    assert sam_ops.cpu_fallbacks_installed()
    # Build under the mmdet3d scope without changing the process default.
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        yield


@pytest.fixture
def op_calls(monkeypatch):
    """Count the calls of each PyTorch implementation behind the
    dispatchers."""
    calls = collections.Counter()
    for name in sam_ops.DISPATCHERS:
        impl_name = f'{name}_torch'
        impl = getattr(dispatch, impl_name)

        def counted(*args, _impl=impl, _name=name, **kwargs):
            calls[_name] += 1
            return _impl(*args, **kwargs)

        monkeypatch.setattr(dispatch, impl_name, counted)
    return calls


# Ops on these paths (NMS is mmdet3d's pure-torch aligned_3d_nms there).
PATH_OPS = {
    'furthest_point_sample', 'gather_points', 'ball_query',
    'grouping_operation', 'three_nn', 'three_interpolate',
    'points_in_boxes_all'
}


def test_votenet_scannet_trains_and_predicts_on_cpu(op_calls):
    cfg = _config('votenet/votenet_8xb8_scannet-3d.py')
    _shrink_backbone(cfg.model)
    cfg.model.bbox_head.vote_aggregation_cfg.num_point = 64
    model = MODELS.build(cfg.model)
    losses = _check_round(model, with_height=True, op_calls=op_calls)
    for key in ('vote_loss', 'objectness_loss', 'center_loss',
                'size_res_loss'):
        assert key in losses
    assert set(op_calls) == PATH_OPS, op_calls


def test_groupfree3d_scannet_trains_and_predicts_on_cpu(op_calls):
    cfg = _config('groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py')
    _shrink_backbone(cfg.model)
    cfg.model.bbox_head.num_proposal = 64
    # Three decoder layers still cover the 'last_three' prediction stages and
    # halve the run time; the point ops are exercised the same way.
    cfg.model.bbox_head.num_decoder_layers = 3
    model = MODELS.build(cfg.model)
    # GroupFree3DHead.predict_by_feat reuses one InstanceData across the batch
    # (mmdet3d 1.4.0), so it only predicts batches of one scene, which is
    # what its ScanNet test_dataloader uses.
    losses = _check_round(
        model, with_height=False, op_calls=op_calls, predict_per_scene=True)
    assert 'sampling_objectness_loss' in losses
    # GroupFree3D's ScanNet targets need no point-in-box test (masks are
    # used), its predict does.
    assert set(op_calls) == PATH_OPS, op_calls
    assert {f's{i}.center_loss' for i in range(3)} <= set(losses)
