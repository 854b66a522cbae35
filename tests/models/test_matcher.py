"""3D match costs and mmdet's HungarianAssigner: cost values and optimality against brute force."""
import itertools
import math

import pytest
import torch
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet3d.registry import TASK_UTILS
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import projects.sam_mtp.models.heads  # noqa: F401  (registers the costs)
from projects.sam_mtp.models.heads import BBox3DCenterL1Cost, BBox3DGIoUCost, BBox3DObjectnessCost, giou_3d

SUN_COSTS = [
    dict(type='mmdet.ClassificationCost', weight=1.0),
    dict(type='BBox3DGIoUCost', weight=3.0),
    dict(type='BBox3DCenterL1Cost', weight=5.0),
    dict(type='BBox3DObjectnessCost', weight=5.0),
]


def make_instances(gen, num_pred, num_gt, num_classes=4, yaw=True):
    def boxes(n):
        parts = [torch.rand(n, 3, generator=gen) * 3, torch.rand(n, 3, generator=gen) + 0.3]
        if yaw:
            parts.append((torch.rand(n, 1, generator=gen) * 2 - 1) * math.pi)
        return torch.cat(parts, 1)

    pred_boxes, gt_boxes = boxes(num_pred), boxes(num_gt)
    pred = InstanceData(scores=torch.randn(num_pred, num_classes + 1, generator=gen), bboxes=pred_boxes,
                        centers_normalized=pred_boxes[:, :3] / 3)
    gt = InstanceData(labels=torch.randint(0, num_classes, (num_gt, ), generator=gen), bboxes=gt_boxes,
                      centers_normalized=gt_boxes[:, :3] / 3)
    return pred, gt


def brute_force_cost_matrix(pred, gt):
    """Loop-based version of the SUN RGB-D matching cost (1 cls, 3 giou, 5 centre, 5 objectness)."""
    cost = torch.zeros(len(pred), len(gt), dtype=torch.float64)
    prob = pred.scores.double().softmax(-1)
    for i in range(len(pred)):
        for j in range(len(gt)):
            giou = giou_3d(pred.bboxes[i:i + 1].double(), gt.bboxes[j:j + 1].double()).item()
            centre = (pred.centers_normalized[i] - gt.centers_normalized[j]).abs().sum().item()
            cost[i, j] = (-prob[i, gt.labels[j]] - 3 * giou + 5 * centre - 5 * (1 - prob[i, -1])).item()
    return cost


def best_total_by_permutations(cost):
    num_pred, num_gt = cost.shape
    return min(sum(cost[p, g].item() for g, p in enumerate(perm))
               for perm in itertools.permutations(range(num_pred), num_gt))


def test_cost_values_match_brute_force():
    gen = torch.Generator().manual_seed(0)
    pred, gt = make_instances(gen, 5, 3)
    total = sum(TASK_UTILS.build(cfg)(pred, gt) for cfg in SUN_COSTS)
    torch.testing.assert_close(total.double(), brute_force_cost_matrix(pred, gt), atol=1e-4, rtol=0)


@pytest.mark.parametrize('seed,num_pred,num_gt', [(1, 4, 3), (2, 5, 2), (3, 6, 4), (4, 3, 3), (5, 2, 3)])
def test_hungarian_assignment_is_optimal(seed, num_pred, num_gt):
    gen = torch.Generator().manual_seed(seed)
    pred, gt = make_instances(gen, num_pred, num_gt)
    assigner = TASK_UTILS.build(dict(type='mmdet.HungarianAssigner', match_costs=SUN_COSTS))
    result = assigner.assign(pred, gt)
    cost = brute_force_cost_matrix(pred, gt)
    matched = (result.gt_inds > 0).nonzero(as_tuple=True)[0]
    # One-to-one: every gt (or every prediction when there are fewer) is matched exactly once.
    assert len(matched) == min(num_pred, num_gt)
    assert len(set(result.gt_inds[matched].tolist())) == len(matched)
    total = sum(cost[p, result.gt_inds[p] - 1].item() for p in matched.tolist())
    if num_pred >= num_gt:
        assert total == pytest.approx(best_total_by_permutations(cost), abs=1e-4)
    else:  # fewer predictions than gts: brute force over the transposed problem
        assert total == pytest.approx(best_total_by_permutations(cost.T), abs=1e-4)
    torch.testing.assert_close(result.labels[matched], gt.labels[result.gt_inds[matched] - 1])


def test_no_gt_assigns_everything_to_background():
    gen = torch.Generator().manual_seed(6)
    pred, gt = make_instances(gen, 4, 0)
    result = TASK_UTILS.build(dict(type='mmdet.HungarianAssigner', match_costs=SUN_COSTS)).assign(pred, gt)
    assert (result.gt_inds == 0).all()


def test_axis_aligned_boxes_use_closed_form():
    gen = torch.Generator().manual_seed(7)
    pred, gt = make_instances(gen, 4, 3, yaw=False)
    cost = BBox3DGIoUCost(weight=2.0)(pred, gt)
    torch.testing.assert_close(cost, -2.0 * giou_3d(pred.bboxes, gt.bboxes, rotated=False))


def test_centre_cost_modes_and_objectness_cost():
    gen = torch.Generator().manual_seed(8)
    pred, gt = make_instances(gen, 4, 2)
    metric = BBox3DCenterL1Cost(weight=1.0, normalized=False)(pred, gt)
    torch.testing.assert_close(metric, (pred.bboxes[:, None, :3] - gt.bboxes[None, :, :3]).abs().sum(-1))
    normalized = BBox3DCenterL1Cost(weight=1.0)(pred, gt)
    torch.testing.assert_close(normalized, metric / 3)
    objectness = BBox3DObjectnessCost(weight=2.0)(pred, gt)
    expected = -2.0 * (1 - pred.scores.softmax(-1)[:, -1])
    torch.testing.assert_close(objectness, expected[:, None].expand(-1, 2))


@pytest.mark.parametrize('scope', [None, 'mmdet3d', 'mmdet'])
def test_costs_resolve_in_both_registries_and_any_default_scope(scope):
    cfg = dict(type='mmdet.HungarianAssigner', match_costs=SUN_COSTS)
    # overwrite_default_scope(None) keeps whatever scope is current (none in a plain pytest run).
    with DefaultScope.overwrite_default_scope(scope):
        assigner = TASK_UTILS.build(cfg)
    assert [type(c).__name__ for c in assigner.match_costs] == [
        'ClassificationCost', 'BBox3DGIoUCost', 'BBox3DCenterL1Cost', 'BBox3DObjectnessCost']
    assert MMDET_TASK_UTILS.get('BBox3DGIoUCost') is BBox3DGIoUCost


def test_missing_field_names_the_cost_and_field():
    gen = torch.Generator().manual_seed(9)
    pred, gt = make_instances(gen, 3, 2)
    del pred.centers_normalized
    with pytest.raises(KeyError, match='BBox3DCenterL1Cost: pred_instances has no field "centers_normalized"'):
        BBox3DCenterL1Cost()(pred, gt)
    pred6 = InstanceData(bboxes=pred.bboxes[:, :6])
    with pytest.raises(ValueError, match='same number of columns'):
        BBox3DGIoUCost()(pred6, gt)
