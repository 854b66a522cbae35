"""Furthest point sampling and gather_points against NumPy references."""
import numpy as np
import point_ops_reference as ref
import pytest
import torch

from projects.sam_mtp.ops import furthest_point_sample, furthest_point_sample_with_dist, gather_points
from projects.sam_mtp.ops.sampling import cuda_fps_block_size, cuda_fps_scan_order


@pytest.mark.parametrize('batch,num_in,num_out', [(1, 7, 4), (2, 50, 16),
                                                  (3, 130, 33)])
def test_fps_matches_kernel_simulation(batch, num_in, num_out):
    torch.manual_seed(0)
    points = torch.rand(batch, num_in, 3)
    index = furthest_point_sample(points, num_out)
    assert index.dtype == torch.int32
    assert index.shape == (batch, num_out)
    expected = ref.furthest_point_sample(points.numpy(), num_out)
    np.testing.assert_array_equal(index.numpy(), expected)
    # Starts at 0, and without duplicates never repeats a point.
    assert (index[:, 0] == 0).all()
    for row in index:
        assert len(set(row.tolist())) == num_out


def test_fps_is_furthest_first():
    """Each chosen point maximises the distance to the chosen set (an
    invariant independent of the kernel simulation)."""
    torch.manual_seed(1)
    points = torch.rand(1, 200, 3, dtype=torch.float64)
    index = furthest_point_sample(points, 20)[0].long()
    for step in range(1, 20):
        chosen = points[0, index[:step]]
        dist = torch.cdist(points[0], chosen).min(dim=1).values
        assert dist[index[step]] == pytest.approx(float(dist.max()), abs=1e-9)


def test_fps_more_samples_than_points_repeats_index_zero():
    """Once all N points are taken all distances are 0 and the CUDA kernel's
    reduction returns index 0 for every further sample; so do we."""
    torch.manual_seed(2)
    points = torch.rand(2, 5, 3)
    index = furthest_point_sample(points, 9)
    expected = ref.furthest_point_sample(points.numpy(), 9)
    np.testing.assert_array_equal(index.numpy(), expected)
    assert sorted(index[0, :5].tolist()) == [0, 1, 2, 3, 4]
    assert (index[:, 5:] == 0).all()


def test_fps_duplicate_points_follow_cuda_tie_order():
    """Exact ties are broken like the CUDA block reduction (bit-reversed
    thread id), which is not the lowest index."""
    torch.manual_seed(3)
    base = torch.rand(1, 9, 3)
    # Many copies of few locations: every step has several exact maxima.
    points = base[:, torch.randint(0, 9, (70, ))]
    index = furthest_point_sample(points, 30)
    expected = ref.furthest_point_sample(points.numpy(), 30)
    np.testing.assert_array_equal(index.numpy(), expected)
    # A case where lowest-index tie-breaking would differ: N = 6 gives a
    # block of 4 threads; points 1, 2 and 3 tie for the furthest from 0.
    points = torch.tensor([[[0., 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1],
                            [0.1, 0, 0], [0, 0.1, 0]]])
    index = furthest_point_sample(points, 2)
    assert index[0, 1].item() == 2  # thread 2 (bit-reversed 1) beats 1, 3
    np.testing.assert_array_equal(index.numpy(),
                                  ref.furthest_point_sample(points.numpy(), 2))


def test_fps_scan_order_is_a_permutation_starting_at_zero():
    for n in (1, 2, 3, 8, 100, 1024, 1500):
        order = cuda_fps_scan_order(n, torch.device('cpu'))
        assert order[0].item() == 0
        assert sorted(order.tolist()) == list(range(n))
    assert cuda_fps_block_size(1) == 1
    assert cuda_fps_block_size(1000) == 512
    assert cuda_fps_block_size(5000) == 1024


def test_fps_float64_and_zero_samples():
    points = torch.rand(2, 10, 3, dtype=torch.float64)
    assert furthest_point_sample(points, 0).shape == (2, 0)
    index = furthest_point_sample(points, 4)
    # numpy integers (e.g. from configs) are accepted like ints
    assert torch.equal(furthest_point_sample(points, np.int64(4)), index)
    expected = ref.furthest_point_sample(points.numpy(), 4)
    # float32 reference on float64 input: same set for generic positions.
    np.testing.assert_array_equal(index.numpy(), expected)


def test_fps_bad_input():
    with pytest.raises(ValueError, match='furthest_point_sample.*last'):
        furthest_point_sample(torch.rand(1, 10, 2), 3)
    with pytest.raises(ValueError, match='3-D'):
        furthest_point_sample(torch.rand(10, 3), 3)
    with pytest.raises(ValueError, match='>= 0'):
        furthest_point_sample(torch.rand(1, 10, 3), -1)
    with pytest.raises(TypeError, match='int'):
        furthest_point_sample(torch.rand(1, 10, 3), 2.0)
    with pytest.raises(ValueError, match='empty'):
        furthest_point_sample(torch.rand(1, 0, 3), 2)
    with pytest.raises(TypeError, match='floating'):
        furthest_point_sample(torch.zeros(1, 10, 3, dtype=torch.int64), 2)


def test_fps_with_dist_matches_kernel_simulation():
    torch.manual_seed(4)
    feats = torch.rand(2, 40, 5)
    dist = torch.cdist(feats, feats)**2
    index = furthest_point_sample_with_dist(dist, 12)
    assert index.dtype == torch.int32 and index.shape == (2, 12)
    expected = ref.furthest_point_sample_with_dist(dist.numpy(), 12)
    np.testing.assert_array_equal(index.numpy(), expected)
    # With the squared Euclidean matrix of xyz it equals D-FPS.
    xyz = torch.rand(2, 40, 3)
    d2 = ((xyz[:, :, None] - xyz[:, None])**2).sum(-1)
    np.testing.assert_array_equal(
        furthest_point_sample_with_dist(d2, 10).numpy(),
        ref.furthest_point_sample_with_dist(d2.numpy(), 10))


def test_fps_with_dist_ties_and_bad_input():
    dist = torch.zeros(1, 6, 6)
    np.testing.assert_array_equal(
        furthest_point_sample_with_dist(dist, 4).numpy(),
        ref.furthest_point_sample_with_dist(dist.numpy(), 4))
    with pytest.raises(ValueError, match='square'):
        furthest_point_sample_with_dist(torch.zeros(1, 6, 5), 2)


def test_gather_points_values_and_gradient():
    torch.manual_seed(5)
    features = torch.rand(2, 4, 9)
    index = torch.randint(0, 9, (2, 6), dtype=torch.int32)
    out = gather_points(features, index)
    np.testing.assert_array_equal(
        out.numpy(), ref.gather_points(features.numpy(), index.numpy()))
    double = torch.rand(2, 3, 5, dtype=torch.float64, requires_grad=True)
    # Repeated indices accumulate gradient.
    idx = torch.tensor([[0, 0, 4], [1, 2, 2]], dtype=torch.int32)
    assert torch.autograd.gradcheck(lambda f: gather_points(f, idx),
                                    (double, ))


def test_gather_points_bad_input():
    with pytest.raises(ValueError, match=r'gather_points.*\[0, 9\)'):
        gather_points(torch.rand(1, 2, 9), torch.tensor([[0, 9]]))
    with pytest.raises(TypeError, match='integer'):
        gather_points(torch.rand(1, 2, 9), torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match='batch size'):
        gather_points(torch.rand(2, 2, 9), torch.tensor([[0, 1]]))
