"""RotatedBoxGroupFree3DHead: GroupFree3D trains on oriented boxes (SUN RGB-D), where mmdet3d 1.4.0's stock head
fails in its first step, and the per-point object targets are the points inside the rotated boxes."""
import math
import os.path as osp

import pytest
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import DepthInstance3DBoxes, Det3DDataSample, PointData
from mmengine.config import Config
from mmengine.structures import InstanceData

import projects.sam_mtp  # noqa: F401
from projects.sam_mtp.models.heads.groupfree3d_head import with_points_in_boxes_all

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SUN_CONFIG = osp.join(REPO, 'configs', 'sam_mtp', 'benchmarks', 'groupfree3d_pointnet2-ssg_4xb8-80e_sunrgbd-3d.py')
WIDTH = 32

# Two oriented boxes (bottom-centre x, y, z, dx, dy, dz, yaw) in a 4 m x 4 m room.
BOXES = torch.tensor([[1.0, 1.0, 0.0, 1.6, 0.4, 0.8, math.pi / 6],
                      [2.8, 2.6, 0.0, 0.5, 1.4, 1.0, -math.pi / 3]])


def head_cfg(head_type):
    """The SUN RGB-D GroupFree3D head of our config, at test width (32 channels, 1 decoder layer, 8 proposals)."""
    head = Config.fromfile(SUN_CONFIG).model.bbox_head
    head.update(
        type=head_type, in_channels=WIDTH, num_decoder_layers=1, num_proposal=8, num_classes=3,
        pred_layer_cfg=dict(in_channels=WIDTH, shared_conv_channels=(WIDTH, WIDTH), bias=True),
        decoder_self_posembeds=dict(type='ConvBNPositionalEncoding', input_channel=6, num_pos_feats=WIDTH),
        decoder_cross_posembeds=dict(type='ConvBNPositionalEncoding', input_channel=3, num_pos_feats=WIDTH),
        train_cfg=dict(sample_mode='kps'))
    head.transformerlayers.attn_cfgs.update(embed_dims=WIDTH, num_heads=2)
    head.transformerlayers.ffn_cfgs.update(embed_dims=WIDTH, feedforward_channels=64)
    head.bbox_coder.update(num_sizes=3, mean_sizes=head.bbox_coder.mean_sizes[:3])
    return head


def scene(seed=0, num_points=400, num_seeds=64):
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(num_points, 3, generator=gen) * torch.tensor([4.0, 4.0, 1.5])
    seeds = torch.randperm(num_points, generator=gen)[:num_seeds]
    feats = dict(fp_xyz=[points[seeds][None]], fp_features=[torch.randn(1, WIDTH, num_seeds, generator=gen)],
                 fp_indices=[seeds[None]])
    sample = Det3DDataSample()
    sample.set_metainfo(dict(box_type_3d=DepthInstance3DBoxes))
    sample.gt_instances_3d = InstanceData(bboxes_3d=DepthInstance3DBoxes(BOXES.clone()),
                                          labels_3d=torch.tensor([0, 2]))
    sample.gt_pts_seg = PointData()  # SUN RGB-D has no point masks (Pack3DDetInputs leaves it empty)
    return points, feats, sample


def inside_rotated_boxes(points, boxes):
    """(N, M) brute force: rotate each point into the box frame (yaw counter-clockwise about +z)."""
    rel = points[:, None, :2] - boxes[None, :, :2]
    cos, sin = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    local_x = rel[..., 0] * cos + rel[..., 1] * sin
    local_y = -rel[..., 0] * sin + rel[..., 1] * cos
    z = points[:, None, 2] - boxes[None, :, 2]
    return ((local_x.abs() < boxes[:, 3] / 2) & (local_y.abs() < boxes[:, 4] / 2) & (z > 0) & (z < boxes[:, 5]))


def test_stock_head_fails_on_oriented_boxes():
    """mmdet3d 1.4.0's bug this head works around; if mmdet3d fixes it this test says so."""
    torch.manual_seed(0)
    head = MODELS.build(head_cfg('GroupFree3DHead'))
    points, feats, sample = scene()
    with pytest.raises(IndexError, match='too many indices'):
        head.loss([points], feats, [sample])


def test_fixed_head_trains_on_oriented_boxes():
    torch.manual_seed(0)
    head = MODELS.build(head_cfg('RotatedBoxGroupFree3DHead'))
    points, feats, sample = scene()
    feats['fp_features'][0].requires_grad_(True)
    losses = head.loss([points], feats, [sample])
    assert losses and all(torch.isfinite(v).all() for v in losses.values())
    assert any('dir_class' in k for k in losses) and any('dir_res' in k for k in losses)
    sum(v.sum() for v in losses.values()).backward()
    assert feats['fp_features'][0].grad.abs().sum() > 0


def test_object_targets_are_the_points_inside_the_rotated_boxes():
    head = MODELS.build(head_cfg('RotatedBoxGroupFree3DHead'))
    points, _, sample = scene(seed=1, num_points=600)
    # A seed / candidate at every point, so the objectness targets are the per-point object mask.
    index = torch.arange(len(points))
    targets = head._get_targets_single(points, sample.gt_instances_3d.bboxes_3d, sample.gt_instances_3d.labels_3d,
                                       max_gt_nums=3, seed_points=points, seed_indices=index,
                                       candidate_indices=index)
    objectness_targets = targets[9]
    expected = inside_rotated_boxes(points, BOXES).any(dim=1)
    assert 20 < int(expected.sum()) < len(points) - 20  # both kinds of points are present
    assert torch.equal(objectness_targets.bool(), expected)
    # The boxes are oriented: ignoring the yaw would label other points.
    assert not torch.equal(expected, inside_rotated_boxes(points, BOXES * torch.tensor([1.0] * 6 + [0.0])).any(1))


def test_boxes_keep_their_type_values_and_fixed_method_through_to_and_new_box():
    boxes = DepthInstance3DBoxes(BOXES.clone())
    fixed = with_points_in_boxes_all(boxes)
    assert isinstance(fixed, DepthInstance3DBoxes) and torch.equal(fixed.tensor, boxes.tensor)
    points = torch.rand(50, 3) * 4
    for variant in (fixed, fixed.to('cpu'), fixed.new_box(boxes.tensor)):
        assert torch.equal(variant.points_in_boxes_part(points), boxes.points_in_boxes_all(points))
