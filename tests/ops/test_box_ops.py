"""points_in_boxes_*, BEV overlap / IoU and 3D NMS against references."""
import math

import numpy as np
import point_ops_reference as ref
import pytest
import torch

from projects.sam_mtp.ops import (
    boxes_iou3d,
    boxes_overlap_bev,
    nms3d,
    nms3d_normal,
    points_in_boxes_all,
    points_in_boxes_part,
)
from projects.sam_mtp.ops.boxes import bev_iou_torch


def _random_boxes(seed, num, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(num, 3, generator=g) * spread
    size = torch.rand(num, 3, generator=g) * 1.5 + 0.3
    heading = (torch.rand(num, 1, generator=g) - 0.5) * 2 * math.pi
    return torch.cat([centre, size, heading], dim=1)


# ---------------------------------------------------------- points in boxes
def test_points_in_boxes_match_reference():
    boxes = torch.stack([_random_boxes(0, 5), _random_boxes(1, 5)])
    g = torch.Generator().manual_seed(2)
    points = torch.rand(2, 300, 3, generator=g) * 3.5
    flags = points_in_boxes_all(points, boxes)
    assert flags.dtype == torch.int32 and flags.shape == (2, 300, 5)
    expected = ref.points_in_boxes_all(points.numpy(), boxes.numpy())
    np.testing.assert_array_equal(flags.numpy(), expected)
    assert 0 < flags.sum() < flags.numel()  # the test is not vacuous
    first = points_in_boxes_part(points, boxes)
    assert first.dtype == torch.int32 and first.shape == (2, 300)
    np.testing.assert_array_equal(
        first.numpy(), ref.points_in_boxes_part(points.numpy(), boxes.numpy()))
    assert (first == -1).any()


def test_points_in_boxes_conventions():
    """Bottom-centre z (inclusive z faces), heading about +z, open x/y."""
    box = torch.tensor([[[0., 0, 1, 4, 2, 2, math.pi / 2]]])
    points = torch.tensor([[
        [0., 0, 0.9],  # below the bottom face (z from 1 to 3)
        [0, 0, 1.0],  # on the bottom face: inside
        [0, 0, 3.0],  # on the top face: inside
        [0, 1.9, 2],  # rotated by 90 deg: the 4 m side lies along y
        [1.9, 0, 2],  # ... and only 2 m along x
    ]])
    assert points_in_boxes_part(points, box)[0].tolist() == [-1, 0, 0, 0, -1]
    assert points_in_boxes_all(points, box)[0, :, 0].tolist() == \
        [0, 1, 1, 1, 0]


def test_points_in_boxes_empty_and_bad_input():
    points = torch.rand(1, 4, 3)
    assert points_in_boxes_part(points, torch.zeros(1, 0, 7)).eq(-1).all()
    assert points_in_boxes_all(points, torch.zeros(1, 0, 7)).shape == (1, 4, 0)
    with pytest.raises(ValueError, match='same batch size'):
        points_in_boxes_all(points, torch.zeros(2, 1, 7))
    with pytest.raises(
            ValueError, match='last dimension of `boxes` must be 7'):
        points_in_boxes_part(points, torch.zeros(1, 1, 6))


def test_points_in_boxes_cpu_agrees_with_mmcv_cpu_kernel():
    """mmcv ships a CPU kernel for the (B, M, T) variant only."""
    mmcv_ops = pytest.importorskip('mmcv.ops')
    boxes = _random_boxes(3, 6)[None]
    points = torch.rand(1, 200, 3, generator=torch.Generator().manual_seed(4))
    expected = mmcv_ops.points_in_boxes_cpu(points * 3, boxes)
    np.testing.assert_array_equal(
        points_in_boxes_all(points * 3, boxes).numpy(), expected.numpy())


# ------------------------------------------------------------- BEV overlap
def test_bev_overlap_matches_kernel_port_and_geometry():
    boxes_a = _random_boxes(5, 12)
    boxes_b = _random_boxes(6, 9)
    overlap = boxes_overlap_bev(boxes_a, boxes_b)
    assert overlap.shape == (12, 9)
    kernel = np.array([[ref.kernel_bev_overlap(a, b) for b in boxes_b.numpy()]
                       for a in boxes_a.numpy()])
    exact = np.array([[ref.exact_bev_overlap(a, b) for b in boxes_b.numpy()]
                      for a in boxes_a.numpy()])
    assert (exact > 0).sum() > 10  # enough overlapping pairs
    np.testing.assert_allclose(overlap.numpy(), kernel, rtol=1e-4, atol=1e-5)
    # The kernel's 1 cm corner margin can add a sliver; otherwise exact.
    np.testing.assert_allclose(overlap.numpy(), exact, atol=2e-2)
    assert np.median(np.abs(overlap.numpy() - exact)) < 1e-5


def test_bev_overlap_special_cases():
    box = torch.tensor([[1., 2, 0, 2, 1, 1, 0.4]])
    # identical boxes: the full area, despite duplicated corner candidates
    assert boxes_overlap_bev(box, box).item() == pytest.approx(2.0, rel=1e-5)
    # a square and the same square rotated by 45 deg: a regular octagon
    square = torch.tensor([[0., 0, 0, 2, 2, 1, 0]])
    rotated = torch.tensor([[0., 0, 0, 2, 2, 1, math.pi / 4]])
    octagon = 8 * (math.sqrt(2) - 1)
    assert boxes_overlap_bev(square, rotated).item() == pytest.approx(
        octagon, rel=1e-5)
    # disjoint and axis-aligned partial overlaps
    far = torch.tensor([[10., 0, 0, 1, 1, 1, 0]])
    assert boxes_overlap_bev(square, far).item() == 0
    shifted = torch.tensor([[1., 0.5, 0, 2, 2, 1, 0]])
    assert boxes_overlap_bev(square, shifted).item() == pytest.approx(
        1.0 * 1.5, rel=1e-5)


def test_boxes_iou3d_uses_gravity_centre():
    a = torch.tensor([[0., 0, 0, 2, 2, 2, 0]])
    b = torch.tensor([[0., 0, 1, 2, 2, 2, 0]])  # half the height overlaps
    assert boxes_iou3d(a, b).item() == pytest.approx(4 / 12, rel=1e-5)
    assert boxes_iou3d(a, a).item() == pytest.approx(1.0, rel=1e-5)


# --------------------------------------------------------------------- NMS
def test_nms3d_matches_greedy_reference():
    boxes = _random_boxes(7, 40, spread=4.0)
    scores = torch.rand(40, generator=torch.Generator().manual_seed(8))
    threshold = 0.3
    iou = bev_iou_torch(boxes, boxes)
    # Keep the reference decision robust: no IoU close to the threshold.
    assert ((iou - threshold).abs() > 1e-3).all()
    keep = nms3d(boxes, scores, threshold)
    assert keep.dtype == torch.int64
    expected = ref.nms(boxes.numpy(), scores.numpy(), threshold,
                       ref.exact_bev_iou)
    np.testing.assert_array_equal(keep.numpy(), expected)
    assert 1 < len(keep) < 40
    # Kept boxes are in descending score order and pairwise below threshold.
    assert (scores[keep].diff() <= 0).all()
    assert (iou[keep][:, keep].triu(1) <= threshold).all()


def test_nms3d_normal_ignores_heading():
    boxes = _random_boxes(9, 30, spread=3.0)
    scores = torch.rand(30, generator=torch.Generator().manual_seed(10))
    keep = nms3d_normal(boxes, scores, 0.2)
    expected = ref.nms(boxes.numpy(), scores.numpy(), 0.2, ref.normal_bev_iou)
    np.testing.assert_array_equal(keep.numpy(), expected)
    rotated = boxes.clone()
    rotated[:, 6] += 1.0
    np.testing.assert_array_equal(
        nms3d_normal(rotated, scores, 0.2).numpy(), keep.numpy())


def test_nms3d_edge_cases():
    empty = nms3d(torch.zeros(0, 7), torch.zeros(0), 0.5)
    assert empty.shape == (0, ) and empty.dtype == torch.int64
    box = torch.tensor([[0., 0, 0, 1, 1, 1, 0.3]])
    duplicates = box.repeat(3, 1)
    keep = nms3d(duplicates, torch.tensor([0.1, 0.9, 0.5]), 0.5)
    assert keep.tolist() == [1]
    with pytest.raises(ValueError, match='one entry per box'):
        nms3d(duplicates, torch.tensor([0.1, 0.9]), 0.5)
    with pytest.raises(ValueError, match='nms3d_normal.*last dimension'):
        nms3d_normal(torch.zeros(2, 5), torch.zeros(2), 0.5)
