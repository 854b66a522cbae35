"""ball_query, knn, three_nn, grouping_operation and three_interpolate
against NumPy references."""
import numpy as np
import point_ops_reference as ref
import pytest
import torch

from projects.sam_mtp.ops import _utils, ball_query, grouping_operation, knn, three_interpolate, three_nn


def _cloud(seed, batch, num, scale=1.0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, num, 3, generator=generator, dtype=dtype) * scale


# ---------------------------------------------------------------- ball query
@pytest.mark.parametrize('min_radius,max_radius,nsample', [(0., 0.3, 8),
                                                           (0.1, 0.4, 5),
                                                           (0., 0.05, 4)])
def test_ball_query_matches_kernel(min_radius, max_radius, nsample):
    xyz = _cloud(0, 2, 80)
    centres = xyz[:, :17].clone()
    centres[:, -3:] += 5.0  # far away: empty balls -> all zeros
    index = ball_query(min_radius, max_radius, nsample, xyz, centres)
    assert index.dtype == torch.int32
    assert index.shape == (2, 17, nsample)
    expected = ref.ball_query(min_radius, max_radius, nsample, xyz.numpy(),
                              centres.numpy())
    np.testing.assert_array_equal(index.numpy(), expected)
    assert (index[:, -3:] == 0).all()


def test_ball_query_duplicates_zero_distance_and_min_radius():
    """A point at distance exactly 0 is always in the ball, even inside
    ``min_radius``; duplicates count separately; free slots repeat the first
    found index."""
    xyz = torch.tensor([[[0., 0, 0], [0, 0, 0], [0.05, 0, 0], [0.3, 0, 0],
                         [2, 0, 0]]])
    centres = torch.tensor([[[0., 0, 0], [2, 0, 0], [9, 9, 9]]])
    index = ball_query(0.1, 0.5, 4, xyz, centres)
    # centre 0: points 0, 1 (d2 == 0), 3 (in [0.1, 0.5)); point 2 is too close
    assert index[0, 0].tolist() == [0, 1, 3, 0]
    assert index[0, 1].tolist() == [4, 4, 4, 4]
    assert index[0, 2].tolist() == [0, 0, 0, 0]
    np.testing.assert_array_equal(
        index.numpy(), ref.ball_query(0.1, 0.5, 4, xyz.numpy(),
                                      centres.numpy()))


def test_ball_query_takes_first_in_index_order_and_chunks(monkeypatch):
    # Tiny chunks exercise the chunked path; the result must not change.
    xyz = _cloud(1, 1, 300, scale=0.5)
    centres = xyz[:, :40]
    full = ball_query(0., 0.25, 16, xyz, centres)
    monkeypatch.setattr(_utils, 'CHUNK_ELEMENTS', 500)
    chunked = ball_query(0., 0.25, 16, xyz, centres)
    np.testing.assert_array_equal(full.numpy(), chunked.numpy())
    np.testing.assert_array_equal(
        full.numpy(), ref.ball_query(0., 0.25, 16, xyz.numpy(),
                                     centres.numpy()))
    # Dense neighbourhoods are truncated to the lowest indices, ascending.
    assert (full[0].diff(dim=1) >= 0).all()


def test_ball_query_more_slots_than_points():
    xyz = _cloud(2, 1, 3)
    index = ball_query(0., 10., 6, xyz, xyz)
    assert index[0, 0].tolist() == [0, 1, 2, 0, 0, 0]


def test_ball_query_stacked_mode():
    xyz = _cloud(3, 1, 50)[0]
    centres = _cloud(4, 1, 12)[0]
    centres[5] += 10.0  # empty ball -> [-1, 0, ...]
    xyz_cnt = torch.tensor([30, 20], dtype=torch.int32)
    centre_cnt = torch.tensor([7, 5], dtype=torch.int32)
    index = ball_query(0., 0.3, 6, xyz, centres, xyz_cnt, centre_cnt)
    assert index.shape == (12, 6) and index.dtype == torch.int32
    expected = ref.stacked_ball_query(0.3, 6, xyz.numpy(), [30, 20],
                                      centres.numpy(), [7, 5])
    np.testing.assert_array_equal(index.numpy(), expected)
    assert index[5].tolist() == [-1, 0, 0, 0, 0, 0]


def test_ball_query_bad_input():
    xyz = _cloud(0, 1, 10)
    with pytest.raises(ValueError, match='ball_query.*min_radius'):
        ball_query(0.5, 0.2, 4, xyz, xyz)
    with pytest.raises(ValueError, match='sample_num'):
        ball_query(0., 0.2, 0, xyz, xyz)
    with pytest.raises(ValueError, match='batch size'):
        ball_query(0., 0.2, 4, xyz, _cloud(0, 2, 10))
    with pytest.raises(ValueError, match='last dimension'):
        ball_query(0., 0.2, 4, xyz[..., :2], xyz)
    with pytest.raises(TypeError, match='int32'):
        ball_query(0., 0.2, 4, xyz[0], xyz[0], torch.tensor([10]),
                   torch.tensor([10]))


# ----------------------------------------------------------------------- knn
def test_knn_matches_reference_and_layout():
    xyz = _cloud(5, 2, 60)
    centres = _cloud(6, 2, 11)
    index = knn(7, xyz, centres)
    assert index.dtype == torch.int32
    assert index.shape == (2, 7, 11)
    np.testing.assert_array_equal(index.numpy(),
                                  ref.knn(7, xyz.numpy(), centres.numpy()))
    # Nearest first: distances along k are non-decreasing.
    gathered = torch.gather(xyz[:, None].expand(-1, 7, -1, -1), 2,
                            index.long()[..., None].expand(-1, -1, -1, 3))
    dist = (gathered - centres[:, None]).norm(dim=-1)
    assert (dist.diff(dim=1) >= 0).all()
    # transposed inputs and the default centre set (= xyz)
    transposed = knn(7,
                     xyz.transpose(1, 2).contiguous(),
                     centres.transpose(1, 2).contiguous(), True)
    np.testing.assert_array_equal(transposed.numpy(), index.numpy())
    self_knn = knn(3, xyz)
    assert (self_knn[:, 0] == torch.arange(60)).all()


def test_knn_duplicates_and_few_points():
    xyz = torch.tensor([[[0., 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0],
                         [2, 0, 0]]])
    centre = torch.tensor([[[0.9, 0, 0]]])
    # Three exact ties at the boundary: the lowest indices win.
    assert knn(2, xyz, centre)[0, :, 0].tolist() == [1, 2]
    assert knn(4, xyz, centre)[0, :, 0].tolist() == [1, 2, 3, 0]
    # k > N: the slots that the CUDA heap never fills keep index 0.
    few = xyz[:, :2]
    assert knn(4, few, centre)[0, :, 0].tolist() == [1, 0, 0, 0]
    np.testing.assert_array_equal(
        knn(4, few, centre).numpy(), ref.knn(4, few.numpy(), centre.numpy()))


def test_knn_bad_input():
    xyz = _cloud(0, 1, 10)
    for bad_k in (0, 100):
        with pytest.raises(ValueError, match=r'knn.*\[1, 99\]'):
            knn(bad_k, xyz)
    with pytest.raises(ValueError, match='transposed=True'):
        knn(2, xyz, xyz, True)


# ------------------------------------------------------------------ three_nn
def test_three_nn_matches_kernel():
    target = _cloud(7, 2, 25)
    source = _cloud(8, 2, 40)
    dist, index = three_nn(target, source)
    assert dist.dtype == torch.float32 and index.dtype == torch.int32
    assert dist.shape == index.shape == (2, 25, 3)
    ref_dist, ref_index = ref.three_nn(target.numpy(), source.numpy())
    np.testing.assert_array_equal(index.numpy(), ref_index)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-6)
    # Euclidean, not squared.
    nearest = source[0, index[0, :, 0].long()]
    torch.testing.assert_close(dist[0, :, 0],
                               (target[0] - nearest).norm(dim=1))


def test_three_nn_ties_and_fewer_than_three_sources():
    target = torch.tensor([[[0., 0, 0]]])
    source = torch.tensor([[[1., 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]]])
    _, index = three_nn(target, source)
    assert index[0, 0].tolist() == [0, 1, 2]
    two = source[:, :2]
    dist, index = three_nn(target, two)
    assert index[0, 0].tolist() == [0, 1, 0]
    assert torch.isinf(dist[0, 0, 2])  # 1e40 overflows float32
    ref_dist, ref_index = ref.three_nn(target.numpy(), two.numpy())
    np.testing.assert_array_equal(index.numpy(), ref_index)
    np.testing.assert_array_equal(dist.numpy(), ref_dist)
    dist64, _ = three_nn(target.double(), two.double())
    assert dist64[0, 0, 2].item() == pytest.approx(1e20)


def test_three_nn_not_differentiable():
    target = _cloud(9, 1, 5).requires_grad_()
    dist, _ = three_nn(target, _cloud(10, 1, 8))
    assert not dist.requires_grad


# ------------------------------------------------------- grouping / interp.
def test_grouping_operation_values_and_gradient():
    features = torch.rand(2, 4, 12)
    index = torch.randint(0, 12, (2, 5, 3), dtype=torch.int32)
    out = grouping_operation(features, index)
    assert out.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(
        out.numpy(), ref.grouping_operation(features.numpy(), index.numpy()))
    double = torch.rand(2, 3, 6, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([[[0, 0], [5, 1]], [[2, 2], [2, 3]]], dtype=torch.int32)
    assert torch.autograd.gradcheck(lambda f: grouping_operation(f, idx),
                                    (double, ))


def test_grouping_operation_stacked():
    features = torch.rand(9, 4, dtype=torch.float64, requires_grad=True)
    feature_cnt = torch.tensor([5, 4], dtype=torch.int32)
    index = torch.tensor([[0, 4], [-1, 0], [3, 1]], dtype=torch.int32)
    index_cnt = torch.tensor([2, 1], dtype=torch.int32)
    out = grouping_operation(features, index, feature_cnt, index_cnt)
    assert out.shape == (3, 4, 2)
    torch.testing.assert_close(out[0, :, 1], features[4])
    torch.testing.assert_close(out[1, :, 0], torch.zeros(4).double())
    torch.testing.assert_close(out[2, :, 0], features[5 + 3])  # local index
    assert torch.autograd.gradcheck(
        lambda f: grouping_operation(f, index, feature_cnt, index_cnt),
        (features, ))


def test_three_interpolate_values_and_gradient():
    features = torch.rand(2, 3, 7)
    index = torch.randint(0, 7, (2, 5, 3), dtype=torch.int32)
    weight = torch.rand(2, 5, 3)
    out = three_interpolate(features, index, weight)
    np.testing.assert_allclose(
        out.numpy(),
        ref.three_interpolate(features.numpy(), index.numpy(), weight.numpy()),
        rtol=1e-6)
    double = features.double().requires_grad_()
    w = weight.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda f: three_interpolate(f, index, w),
                                    (double, ))
    # As in mmcv, no gradient reaches the weights.
    three_interpolate(double, index, w).sum().backward()
    assert w.grad is None and double.grad is not None


def test_grouping_bad_input():
    with pytest.raises(ValueError, match=r'grouping_operation.*\[0, 4\)'):
        grouping_operation(torch.rand(1, 2, 4), torch.full((1, 2, 2), 4))
    with pytest.raises(ValueError, match='same shape'):
        three_interpolate(
            torch.rand(1, 2, 4), torch.zeros(1, 3, 3, dtype=torch.int32),
            torch.rand(1, 2, 3))


# --------------------------------------------------------- k smallest helper
def test_k_smallest_by_index_breaks_ties_by_index():
    values = torch.tensor([[3., 1, 1, 2, 1, 0], [5, 5, 5, 5, 5, 5],
                           [7, 1, 9, 8, 2, 7]])
    vals, idx, found = _utils.k_smallest_by_index(values, 3, limit=7.5)
    assert idx[:2].tolist() == [[5, 1, 2], [0, 1, 2]]
    assert vals[:2].tolist() == [[0, 1, 1], [5, 5, 5]]
    # entries >= limit are not found; ties at the limit are irrelevant
    assert idx[2].tolist() == [1, 4, 0] and found[2].tolist() == [1, 1, 1]
    vals, idx, found = _utils.k_smallest_by_index(values, 4, limit=7.0)
    assert found[2].tolist() == [1, 1, 0, 0]
    assert found[:2].all()
