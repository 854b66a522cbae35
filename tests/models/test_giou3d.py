"""3D GIoU: hand-computed boxes, an independent polygon-clipping reference, invariances and gradients."""
import math

import numpy as np
import pytest
import torch

from projects.sam_mtp.models.heads.box3d_giou import _convex_hull_area, box3d_bev_corners, giou_3d, iou_3d


def box(x, y, z, dx, dy, dz, yaw=0.0):
    return torch.tensor([[x, y, z, dx, dy, dz, yaw]], dtype=torch.float64)


# ---------------------------------------------------------------- independent reference (numpy, plain loops)
def _clip(subject, clip_poly):
    """Sutherland-Hodgman clipping of a polygon by a CCW convex polygon."""
    output = list(subject)
    for i in range(len(clip_poly)):
        a, b = clip_poly[i], clip_poly[(i + 1) % len(clip_poly)]
        inside = lambda p: (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0  # noqa: E731
        current, output = output, []
        for j in range(len(current)):
            p, q = current[j], current[(j + 1) % len(current)]
            if inside(q):
                if not inside(p):
                    output.append(_line_cross(p, q, a, b))
                output.append(q)
            elif inside(p):
                output.append(_line_cross(p, q, a, b))
        if not output:
            return []
    return output


def _line_cross(p, q, a, b):
    d1, d2 = q - p, b - a
    t = ((a[0] - p[0]) * d2[1] - (a[1] - p[1]) * d2[0]) / (d1[0] * d2[1] - d1[1] * d2[0])
    return p + t * d1


def _area(poly):
    if len(poly) < 3:
        return 0.0
    return 0.5 * abs(sum(poly[i][0] * poly[(i + 1) % len(poly)][1] - poly[(i + 1) % len(poly)][0] * poly[i][1]
                         for i in range(len(poly))))


def _hull_area(points):
    pts = sorted(map(tuple, points))
    cross = lambda o, a, b: (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])  # noqa: E731
    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return _area([np.array(p) for p in lower[:-1] + upper[:-1]])


def reference_giou(b1, b2, enclosing='aligned'):
    c1, c2 = box3d_bev_corners(b1[None]).numpy()[0], box3d_bev_corners(b2[None]).numpy()[0]
    b1, b2 = b1.numpy(), b2.numpy()
    z_inter = max(0.0, min(b1[2] + b1[5] / 2, b2[2] + b2[5] / 2) - max(b1[2] - b1[5] / 2, b2[2] - b2[5] / 2))
    z_encl = max(b1[2] + b1[5] / 2, b2[2] + b2[5] / 2) - min(b1[2] - b1[5] / 2, b2[2] - b2[5] / 2)
    inter = _area(_clip(list(c1), list(c2))) * z_inter
    union = b1[3:6].prod() + b2[3:6].prod() - inter
    corners = np.concatenate([c1, c2])
    bev = _hull_area(corners) if enclosing == 'hull' else np.prod(corners.max(0) - corners.min(0))
    enclose = bev * z_encl
    return inter / union - (enclose - union) / enclose


def random_boxes(gen, n, yaw=True):
    centre = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 1.5
    size = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 1.5 + 0.2
    heading = (torch.rand(n, 1, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi * yaw
    return torch.cat([centre, size, heading], 1)


# ---------------------------------------------------------------- hand-computed cases
@pytest.mark.parametrize('rotated', [False, True])
@pytest.mark.parametrize('enclosing', ['aligned', 'hull'])
def test_identical_axis_aligned_boxes_have_giou_one(rotated, enclosing):
    b = box(0.3, -1.0, 0.5, 2.0, 1.0, 0.5)
    assert giou_3d(b, b, rotated=rotated, enclosing=enclosing).item() == pytest.approx(1.0, abs=1e-9)
    assert iou_3d(b, b, rotated=rotated).item() == pytest.approx(1.0, abs=1e-9)


def test_identical_rotated_boxes_hull_gives_one_aligned_penalises():
    b = box(0.3, -1.0, 0.5, 2.0, 1.0, 0.5, 0.7)
    assert iou_3d(b, b).item() == pytest.approx(1.0, abs=1e-9)
    assert giou_3d(b, b, enclosing='hull').item() == pytest.approx(1.0, abs=1e-9)
    # 3DETR's axis-aligned enclosing box of a 2x1 rectangle turned by 0.7 rad.
    c, s = math.cos(0.7), math.sin(0.7)
    enclose = (2 * c + 1 * s) * (2 * s + 1 * c) * 0.5
    assert giou_3d(b, b, enclosing='aligned').item() == pytest.approx(1 - (enclose - 1.0) / enclose, abs=1e-9)


@pytest.mark.parametrize('rotated', [False, True])
def test_disjoint_boxes_known_negative_value(rotated):
    # Two 2x2x2 cubes 4 apart along x: union 16, enclosing 6x2x2 = 24 -> GIoU = -8/24.
    a, b = box(0, 0, 0, 2, 2, 2), box(4, 0, 0, 2, 2, 2)
    assert giou_3d(a, b, rotated=rotated).item() == pytest.approx(-1 / 3, abs=1e-9)
    # Also apart in z: enclosing 6x2x4 = 48 -> GIoU = -(48 - 16)/48.
    c = box(4, 0, 2, 2, 2, 2)
    assert giou_3d(a, c, rotated=rotated).item() == pytest.approx(-2 / 3, abs=1e-9)


@pytest.mark.parametrize('rotated', [False, True])
def test_nested_boxes_giou_equals_volume_ratio(rotated):
    outer, inner = box(0, 0, 0, 4, 4, 4), box(0.5, -0.5, 0.2, 1, 2, 1)
    assert giou_3d(outer, inner, rotated=rotated).item() == pytest.approx(2 / 64, abs=1e-9)
    assert iou_3d(inner, outer, rotated=rotated).item() == pytest.approx(2 / 64, abs=1e-9)


@pytest.mark.parametrize('rotated', [False, True])
def test_touching_boxes_have_giou_zero(rotated):
    # Shared face: no overlap, enclosing box == union.
    assert giou_3d(box(0, 0, 0, 2, 2, 2), box(2, 0, 0, 2, 2, 2), rotated=rotated).item() == \
        pytest.approx(0.0, abs=1e-9)
    # Shared edge only: union 16, enclosing 4x4x2 = 32 -> -1/2.
    assert giou_3d(box(0, 0, 0, 2, 2, 2), box(2, 2, 0, 2, 2, 2), rotated=rotated).item() == \
        pytest.approx(-0.5, abs=1e-9)


def test_convex_hull_enclosing_is_tighter_for_diagonal_neighbours():
    # Squares touching at one corner: the BEV hull is the 4x4 square minus two corner triangles of area 2,
    # i.e. 12, so the enclosing volume is 24 and GIoU = -(24 - 16)/24.
    a, b = box(0, 0, 0, 2, 2, 2), box(2, 2, 0, 2, 2, 2)
    for rotated in (False, True):
        assert giou_3d(a, b, rotated=rotated, enclosing='hull').item() == pytest.approx(-1 / 3, abs=1e-9)


def test_square_against_itself_rotated_45_degrees():
    # BEV overlap of a side-2 square and its 45-degree copy is a regular octagon of area 8(sqrt2 - 1). The
    # hull of both is a regular octagon of circumradius sqrt2 (area 4 sqrt2); the axis-aligned enclosing
    # square has side 2 sqrt2 (area 8).
    a, b = box(0, 0, 0, 2, 2, 2), box(0, 0, 0, 2, 2, 2, math.pi / 4)
    inter = 8 * (math.sqrt(2) - 1) * 2
    union = 16 - inter
    assert iou_3d(a, b).item() == pytest.approx(inter / union, abs=1e-9)
    for enclosing, enclose in (('hull', 4 * math.sqrt(2) * 2), ('aligned', 8 * 2)):
        assert giou_3d(a, b, enclosing=enclosing).item() == \
            pytest.approx(inter / union - (enclose - union) / enclose, abs=1e-9)


def test_quarter_turn_equals_swapped_dimensions():
    a = box(0.2, 0.1, 0, 3, 1, 1)
    b_rot = box(0.5, 0.4, 0.3, 1, 2, 1.5, math.pi / 2)
    b_swapped = box(0.5, 0.4, 0.3, 2, 1, 1.5)
    assert giou_3d(a, b_rot).item() == pytest.approx(giou_3d(a, b_swapped, rotated=False).item(), abs=1e-9)


# ---------------------------------------------------------------- against the reference, invariants
@pytest.mark.parametrize('enclosing', ['aligned', 'hull'])
def test_rotated_matches_independent_clipping_reference(enclosing):
    gen = torch.Generator().manual_seed(0)
    b1, b2 = random_boxes(gen, 12), random_boxes(gen, 9)
    ours = giou_3d(b1, b2, enclosing=enclosing)
    ref = torch.tensor([[reference_giou(p, q, enclosing) for q in b2] for p in b1], dtype=torch.float64)
    assert ours.shape == (12, 9)
    # The sample exercises positive and negative GIoU and both overlapping and disjoint pairs.
    assert (ref > 0).any() and (ref < 0).any()
    assert (iou_3d(b1, b2) > 0).any() and (iou_3d(b1, b2) == 0).any()
    torch.testing.assert_close(ours, ref, atol=1e-7, rtol=0)


@pytest.mark.parametrize('enclosing', ['aligned', 'hull'])
def test_rotated_path_with_zero_yaw_equals_closed_form(enclosing):
    gen = torch.Generator().manual_seed(1)
    b1, b2 = random_boxes(gen, 10, yaw=False), random_boxes(gen, 7, yaw=False)
    torch.testing.assert_close(giou_3d(b1, b2, rotated=True, enclosing=enclosing),
                               giou_3d(b1, b2, rotated=False, enclosing=enclosing), atol=1e-9, rtol=0)
    torch.testing.assert_close(giou_3d(b1[:, :6], b2[:, :6]), giou_3d(b1, b2, rotated=False))


def test_invariances_symmetry_and_range():
    gen = torch.Generator().manual_seed(2)
    b1, b2 = random_boxes(gen, 8), random_boxes(gen, 8)
    g = giou_3d(b1, b2, enclosing='hull')
    torch.testing.assert_close(g, giou_3d(b2, b1, enclosing='hull').T)
    assert g.min() >= -1 and g.max() <= 1
    torch.testing.assert_close(giou_3d(b1, b2, aligned=True, enclosing='hull'), torch.diagonal(g))
    shift = torch.tensor([5.0, -3.0, 1.0, 0, 0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(giou_3d(b1 + shift, b2 + shift), giou_3d(b1, b2), atol=1e-9, rtol=0)
    # With the hull, a common rigid motion about z (rotation + translation) changes nothing.
    angle, shift = 0.9, torch.tensor([5.0, -3.0, 1.0], dtype=torch.float64)
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]],
                       dtype=torch.float64)

    def move(b):
        out = b.clone()
        out[:, :2] = b[:, :2] @ rot.T
        out[:, :3] += shift
        out[:, 6] += angle
        return out

    torch.testing.assert_close(giou_3d(move(b1), move(b2), enclosing='hull'), g, atol=1e-9, rtol=0)


def test_convex_hull_area_matches_monotone_chain():
    gen = torch.Generator().manual_seed(3)
    pts = torch.rand(40, 8, 2, generator=gen, dtype=torch.float64) * 4 - 2
    pts[:5, 4:] = pts[:5, :4]  # duplicated points
    pts[5:10, :, 1] = 0.5 * pts[5:10, :, 0] + 1  # collinear points: zero area
    ours = _convex_hull_area(pts, eps=1e-9)
    ref = torch.tensor([_hull_area(p.numpy()) for p in pts], dtype=torch.float64)
    torch.testing.assert_close(ours, ref, atol=1e-9, rtol=0)


def test_gradients_are_finite_and_correct():
    gen = torch.Generator().manual_seed(4)
    b1 = random_boxes(gen, 4).requires_grad_()
    b2 = random_boxes(gen, 4)
    b2[:, :3] = b1.detach()[:, :3] + 0.3  # overlapping pairs, generic positions
    for enclosing in ('aligned', 'hull'):
        assert torch.autograd.gradcheck(lambda x: giou_3d(x, b2, aligned=True, enclosing=enclosing), (b1, ),
                                        eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda x: giou_3d(x[:, :6], b2[:, :6], aligned=True), (b1, ), eps=1e-6,
                                    atol=1e-5)
    # Identical and parallel-edged boxes are degenerate for the polygon code: gradients must still be finite.
    same = b1.detach().clone().requires_grad_()
    giou_3d(same, b1.detach(), aligned=True).sum().backward()
    assert torch.isfinite(same.grad).all()


def test_float32_large_coordinates_stay_accurate():
    # Boxes far from the origin (ScanNet scenes are several metres across) in float32.
    a = box(105.0, -40.0, 1.0, 1.2, 0.8, 1.0, 0.4).float()
    b = box(105.3, -39.9, 1.1, 1.0, 1.0, 1.0, -0.2).float()
    ref = reference_giou(a[0].double(), b[0].double())
    assert giou_3d(a, b).item() == pytest.approx(ref, abs=1e-4)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match='box3d_giou: boxes1 must have shape'):
        giou_3d(torch.zeros(3, 5), torch.zeros(2, 7))
    with pytest.raises(ValueError, match='aligned=True needs as many'):
        giou_3d(torch.zeros(3, 7), torch.zeros(2, 7), aligned=True)
    with pytest.raises(ValueError, match='rotated=True needs boxes with 7 values'):
        giou_3d(torch.ones(3, 6), torch.ones(2, 6), rotated=True)
    with pytest.raises(ValueError, match='enclosing must be one of'):
        giou_3d(torch.ones(3, 7), torch.ones(2, 7), enclosing='box')
    with pytest.raises(TypeError, match='must be a torch.Tensor'):
        giou_3d(np.zeros((3, 7)), torch.zeros(2, 7))


def test_giou_loss_reductions():
    from projects.sam_mtp.models.heads import GIoU3DLoss
    gen = torch.Generator().manual_seed(5)
    pred, target = random_boxes(gen, 6), random_boxes(gen, 6)
    per_pair = 1 - giou_3d(pred, target, aligned=True)
    loss = GIoU3DLoss(loss_weight=2.0)
    torch.testing.assert_close(loss(pred, target), 2 * per_pair.mean())
    torch.testing.assert_close(loss(pred, target, avg_factor=4.0), 2 * per_pair.sum() / 4)
    torch.testing.assert_close(loss(pred, target, reduction_override='none'), 2 * per_pair)
    assert loss(pred[:0], target[:0]).item() == 0
