"""projects.sam_mtp.testing: the synthetic inputs that tests, benchmarks and the GPU bench share are what their
docstrings say (Voronoi regions are nearest-seed cells, boxes hold their points, samples carry their targets)."""
import numpy as np
import torch
from mmdet3d.structures import DepthInstance3DBoxes

from projects.sam_mtp.testing import (
    det3d_sample,
    detection_batch,
    region_batch,
    region_points,
    segmentation_batch,
    voronoi_regions,
)


def test_det3d_sample_with_box_tensor_and_masks():
    boxes = torch.tensor([[1.0, 2.0, 0.5, 0.4, 0.6, 1.0, 0.0], [3.0, 1.0, 0.25, 1.0, 1.0, 0.5, 0.0]])
    labels, semantic, instance = torch.tensor([4, 7]), torch.tensor([4, 7, 18]), torch.tensor([1, 2, 0])
    sample = det3d_sample(boxes, labels, instance_mask=instance, semantic_mask=semantic, sample_idx=3)
    assert sample.metainfo == dict(box_type_3d=DepthInstance3DBoxes, sample_idx=3)
    got = sample.gt_instances_3d.bboxes_3d
    assert isinstance(got, DepthInstance3DBoxes) and not got.with_yaw
    # the tensor holds gravity centres: the bottom centre is half a height lower
    assert torch.allclose(got.gravity_center, boxes[:, :3])
    assert torch.allclose(got.bottom_center[:, 2], torch.tensor([0.0, 0.0]))
    assert torch.equal(sample.gt_instances_3d.labels_3d, labels)
    assert torch.equal(sample.gt_pts_seg.pts_instance_mask, instance)
    assert torch.equal(sample.gt_pts_seg.pts_semantic_mask, semantic)


def test_det3d_sample_keeps_given_boxes_and_omits_absent_targets():
    boxes = DepthInstance3DBoxes(torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.3]]), box_dim=7, with_yaw=True)
    assert det3d_sample(boxes, torch.tensor([0])).gt_instances_3d.bboxes_3d is boxes
    assert 'gt_pts_seg' not in det3d_sample(boxes, torch.tensor([0]))
    only_masks = det3d_sample(semantic_mask=torch.tensor([1, 2]))
    assert 'gt_instances_3d' not in only_masks and 'box_type_3d' not in only_masks.metainfo
    assert set(only_masks.gt_pts_seg.keys()) == {'pts_semantic_mask'}


def test_region_points_are_voronoi_cells_of_seeds_drawn_after_the_points():
    batch, num, regions, extent = 2, 300, 7, (4.0, 3.0, 0.5)
    points, region = region_points(batch, num, regions, extent, 0.2, torch.Generator().manual_seed(5))
    # the same draws, nearest seed by a loop
    g = torch.Generator().manual_seed(5)
    ref_points = torch.rand(batch, num, 3, generator=g) * torch.tensor(extent)
    seeds = torch.rand(batch, regions, 3, generator=g) * torch.tensor(extent)
    unassigned = torch.rand(batch, num, generator=g) < 0.2
    assert torch.equal(points, ref_points)
    for b in range(batch):
        for n in range(num):
            dist = [float(((points[b, n] - seeds[b, r]) ** 2).sum()) for r in range(regions)]
            expected = 0 if unassigned[b, n] else 1 + int(np.argmin(dist))
            assert int(region[b, n]) == expected, (b, n)
    assert ((points >= 0) & (points <= torch.tensor(extent))).all()


def test_region_batch_is_a_collated_batch_with_equal_group_weights():
    inputs, samples = region_batch(2, 500, 9, 16, 4, torch.Generator().manual_seed(0))
    assert inputs['points'].shape == (2, 500, 3) and (inputs['points'] <= torch.tensor([6., 6., 3.])).all()
    assert inputs['point_region'].min() >= 0 and inputs['point_region'].max() <= 9
    unassigned = (inputs['point_region'] == 0).float().mean()
    assert 0.05 < unassigned < 0.15  # ~10 %
    assert samples['region_feat'].shape == (2, 9, 16) and samples['region_mask'].all()
    assert torch.equal(samples['region_weight'], torch.full((2, 9), 0.25))
    assert ((samples['region_group'] >= 0) & (samples['region_group'] < 4)).all()
    assert torch.equal(samples['num_groups'], torch.tensor([4, 4]))


def test_voronoi_regions_are_nearest_seed_pixels():
    height, width, count = 9, 13, 5
    regions = voronoi_regions(height, width, count, seed=2)
    seeds = np.random.default_rng(2).uniform((0, 0), (height, width), (count, 2))
    for y in range(height):
        for x in range(width):
            dist = [(y - sy) ** 2 + (x - sx) ** 2 for sy, sx in seeds]
            assert regions[y, x] == 1 + int(np.argmin(dist)), (y, x)


def test_detection_batch_boxes_hold_their_points():
    data = detection_batch(2, 2000, 5, torch.Generator().manual_seed(1), 18, num_segments=30)
    for points, sample in zip(data['inputs']['points'], data['data_samples']):
        boxes = sample.gt_instances_3d.bboxes_3d
        instance, semantic = sample.gt_pts_seg.pts_instance_mask, sample.gt_pts_seg.pts_semantic_mask
        labels = sample.gt_instances_3d.labels_3d
        floor = instance == 0
        assert (points[floor, 2] == 0).all() and (semantic[floor] == 18).all()
        assert torch.allclose(boxes.bottom_center[:, 2], torch.zeros(len(boxes)))  # the furniture stands on it
        for k in range(len(boxes)):
            mine = points[instance == k + 1, :3]
            centre, size = boxes.gravity_center[k], boxes.dims[k]
            assert (torch.abs(mine - centre) <= size / 2 + 1e-5).all(), k
            assert (semantic[instance == k + 1] == labels[k]).all()
        segment = points[:, 3]
        assert segment.min() == -1 and segment.max() < 30
        assert 0.07 < (segment == -1).float().mean() < 0.13  # ~10 % in no segment


def test_segmentation_batch_segments_are_half_metre_cells_of_one_class():
    data = segmentation_batch(1, 800, 20, torch.Generator().manual_seed(0))
    points, semantic = data['inputs']['points'][0], data['data_samples'][0].gt_pts_seg.pts_semantic_mask
    cell = (points[:, 0] * 2).floor() * 4 + (points[:, 1] * 2).floor()
    assert torch.equal(points[:, 6], cell)
    for c in cell.unique():
        assert semantic[cell == c].unique().numel() == 1
