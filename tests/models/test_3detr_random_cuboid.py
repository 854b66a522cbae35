"""RandomCuboidCrop (3DETR augmentation): exact keep sets, invariants of the random path, fallbacks, errors."""
import numpy as np
import pytest
import torch
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import DepthInstance3DBoxes, DepthPoints

import projects.sam_mtp.datasets.random_cuboid  # noqa: F401  (registers the transform)


def make_sample(seed=0, num_points=2000):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform([0, 0, 0], [6, 5, 3], (num_points, 3)).astype(np.float32)
    # The fourth point channel stores the original index, so kept points can be traced back.
    points = DepthPoints(np.c_[xyz, np.arange(num_points, dtype=np.float32)], points_dim=4,
                         attribute_dims=dict(index=3))
    centres = np.array([[1, 1, 1], [3, 2.5, 1.5], [5, 4, 0.5], [5.5, 0.5, 2.5]], dtype=np.float32)
    boxes = np.c_[centres, np.full((4, 3), 0.6, dtype=np.float32)]
    return dict(
        points=points,
        gt_bboxes_3d=DepthInstance3DBoxes(boxes, box_dim=6, with_yaw=False, origin=(0.5, 0.5, 0.5)),
        gt_labels_3d=np.array([0, 1, 2, 3]),
        pts_semantic_mask=np.arange(num_points) % 7,
        pts_instance_mask=np.arange(num_points) % 11)


def test_fixed_cuboid_keeps_exactly_the_inside_points_and_boxes(monkeypatch):
    crop = TRANSFORMS.build(dict(type='RandomCuboidCrop', min_points=10))
    low, high = np.array([0.5, 0.5, 0.0]), np.array([3.5, 3.0, 2.0])
    monkeypatch.setattr(crop, '_draw_cuboid', lambda xyz: (low, high))
    sample = make_sample()
    xyz = sample['points'].coord.numpy()
    out = crop(make_sample())
    inside = np.all((xyz >= low) & (xyz <= high), axis=1)
    kept_index = out['points'].tensor[:, 3].long().numpy()
    np.testing.assert_array_equal(kept_index, np.flatnonzero(inside))
    np.testing.assert_array_equal(out['pts_semantic_mask'], kept_index % 7)
    np.testing.assert_array_equal(out['pts_instance_mask'], kept_index % 11)
    # Box centres (1,1,1) and (3,2.5,1.5) lie inside the kept points' extent; (5,4,.5) and (5.5,.5,2.5) do not.
    np.testing.assert_array_equal(out['gt_labels_3d'], [0, 1])
    torch.testing.assert_close(out['gt_bboxes_3d'].gravity_center,
                               torch.tensor([[1.0, 1.0, 1.0], [3.0, 2.5, 1.5]]))


def test_cuboid_without_boxes_is_rejected(monkeypatch):
    crop = TRANSFORMS.build(dict(type='RandomCuboidCrop', min_points=10, max_trials=3))
    # A cuboid holding points but no box centre: every trial fails, the sample stays unchanged.
    monkeypatch.setattr(crop, '_draw_cuboid', lambda xyz: (np.array([1.5, 3.0, 0.0]), np.array([2.5, 5.0, 3.0])))
    out = crop(make_sample())
    assert len(out['points']) == 2000 and len(out['gt_labels_3d']) == 4


def test_random_crops_keep_exactly_inside_points_and_box_centres(monkeypatch):
    crop = TRANSFORMS.build(dict(type='RandomCuboidCrop', min_points=500, crop_factor=(0.5, 1.0), min_aspect=0.8))
    drawn = []
    draw = crop._draw_cuboid

    def spy(xyz):
        drawn.append(draw(xyz))
        return drawn[-1]

    monkeypatch.setattr(crop, '_draw_cuboid', spy)
    np.random.seed(0)
    num_cropped = 0
    for _ in range(20):
        drawn.clear()
        sample = make_sample()
        xyz = sample['points'].coord.numpy()
        centres = sample['gt_bboxes_3d'].gravity_center.numpy()
        out = crop(sample)
        kept_index = out['points'].tensor[:, 3].long().numpy()
        assert len(kept_index) >= 500
        if len(kept_index) == 2000:
            continue  # no trial succeeded (or the crop covers everything): nothing else to check
        num_cropped += 1
        low, high = drawn[-1]  # the transform stops at the first accepted cuboid
        np.testing.assert_array_equal(kept_index, np.flatnonzero(np.all((xyz >= low) & (xyz <= high), axis=1)))
        kept = xyz[kept_index]
        inside = np.flatnonzero(np.all((centres >= kept.min(0)) & (centres <= kept.max(0)), axis=1))
        assert len(inside) >= 1
        np.testing.assert_array_equal(out['gt_labels_3d'], inside)
    assert num_cropped >= 10


def test_same_seed_same_crop():
    crop = TRANSFORMS.build(dict(type='RandomCuboidCrop', min_points=300))
    np.random.seed(3)
    a = crop(make_sample())
    np.random.seed(3)
    b = crop(make_sample())
    torch.testing.assert_close(a['points'].tensor, b['points'].tensor)
    np.testing.assert_array_equal(a['gt_labels_3d'], b['gt_labels_3d'])


def test_drawn_cuboids_follow_crop_factor_and_aspect():
    crop = TRANSFORMS.build(dict(type='RandomCuboidCrop', crop_factor=(0.5, 1.0), min_aspect=0.95))
    xyz = np.array([[0, 0, 0], [10, 8, 4]], dtype=np.float64)
    extent = xyz.max(0) - xyz.min(0)
    np.random.seed(1)
    draws = [crop._draw_cuboid(xyz) for _ in range(300)]
    accepted = [d for d in draws if d is not None]
    assert 0 < len(accepted) < len(draws)  # the aspect rule rejects some draws
    for low, high in accepted:
        fractions = (high - low) / extent
        assert np.all(fractions >= 0.5 - 1e-9) and np.all(fractions <= 1 + 1e-9)
        # 3DETR's rule: at least one pair of axes has an aspect ratio of min_aspect or more.
        pair = [min(fractions[i], fractions[j]) / max(fractions[i], fractions[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
        assert max(pair) >= 0.95 - 1e-9


def test_unreachable_min_points_and_zero_prob_leave_sample_unchanged():
    for cfg in (dict(min_points=10 ** 6, max_trials=5), dict(min_points=10, prob=0.0)):
        out = TRANSFORMS.build(dict(type='RandomCuboidCrop', **cfg))(make_sample())
        assert len(out['points']) == 2000 and len(out['gt_bboxes_3d']) == 4


def test_sample_without_boxes_is_cropped_by_points_only():
    sample = make_sample()
    for key in ('gt_bboxes_3d', 'gt_labels_3d'):
        sample.pop(key)
    np.random.seed(0)
    out = TRANSFORMS.build(dict(type='RandomCuboidCrop', min_points=300))(sample)
    assert 300 <= len(out['points']) < 2000


def test_bad_arguments_and_inputs_raise():
    with pytest.raises(ValueError, match='RandomCuboidCrop: crop_factor'):
        TRANSFORMS.build(dict(type='RandomCuboidCrop', crop_factor=(0.8, 1.2)))
    with pytest.raises(ValueError, match='RandomCuboidCrop: min_aspect'):
        TRANSFORMS.build(dict(type='RandomCuboidCrop', min_aspect=0))
    with pytest.raises(KeyError, match='RandomCuboidCrop: the sample has no "points"'):
        TRANSFORMS.build(dict(type='RandomCuboidCrop'))(dict())


def test_empty_scene_is_refused_with_its_name():
    sample = make_sample(num_points=0)
    sample['lidar_path'] = 'data/sunrgbd/points/000001.bin'
    with pytest.raises(ValueError, match='sample data/sunrgbd/points/000001.bin has no points to crop'):
        TRANSFORMS.build(dict(type='RandomCuboidCrop'))(sample)
