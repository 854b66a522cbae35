"""The numba kd-tree kernels behind the CPU point ops: identical results to
the brute-force references and to the pure-PyTorch implementations on random
and adversarial inputs, thread spreading, the switches and the no-numba
path."""
import ast
import os
import sys

import numpy as np
import point_ops_reference as ref
import pytest
import torch

import projects.sam_mtp.ops as sam_ops
from projects.sam_mtp.ops import cpu_kernels, dispatch

pytest.importorskip('numba', reason='numba is not installed: no CPU kernels')


@pytest.fixture(autouse=True)
def numba_backend(monkeypatch):
    monkeypatch.delenv(cpu_kernels.ENV_VAR, raising=False)
    assert cpu_kernels.backend() == 'numba'


def _rand(seed, *shape, scale=1.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=dtype) * scale


def _lattice(batch, side, spacing=0.25, dtype=torch.float32):
    """Points on an integer lattice: every distance is repeated many times,
    so that ties decide most choices."""
    axis = torch.arange(side, dtype=dtype) * spacing
    grid = torch.stack(torch.meshgrid(axis, axis, axis, indexing='ij'), -1)
    return grid.reshape(1, -1, 3).repeat(batch, 1, 1)


def _duplicates(seed, batch, num, locations):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(batch, locations, 3, generator=g)
    pick = torch.randint(0, locations, (batch, num), generator=g)
    return torch.gather(base, 1, pick[..., None].expand(-1, -1, 3))


def _clouds():
    """name -> (B, N, 3) float32 clouds, adversarial ones included."""
    two_clusters = torch.cat([_rand(1, 1, 150, 3) * 1e-3,
                              _rand(2, 1, 150, 3) * 1e-3 + 7.0], 1)
    far = _rand(3, 1, 120, 3)
    far[0, 60:] *= 4e5  # squared distances past the 1e10 sentinels
    return {
        'random': _rand(0, 2, 300, 3),
        'lattice': _lattice(2, 6),
        'duplicates': _duplicates(4, 2, 200, 9),
        'identical': torch.full((1, 64, 3), 0.3),
        'two_clusters': two_clusters,
        'far': far,
        'large_coordinates': _rand(5, 1, 200, 3) * 3 + 1e4,
    }


CLOUDS = _clouds()


# ----------------------------------------------------------------------- FPS
@pytest.mark.parametrize('name', sorted(CLOUDS))
def test_fps_matches_cuda_simulation(name):
    points = CLOUDS[name]
    num = min(points.shape[1] + 5, 70)  # identical: more samples than points
    index = sam_ops.furthest_point_sample_fallback(points, num)
    assert index.dtype == torch.int32
    np.testing.assert_array_equal(
        index.numpy(), ref.furthest_point_sample(points.numpy(), num))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_fps_equals_torch_version_at_scale(dtype):
    # Sizes where the tree has several levels; the PyTorch version is the
    # exact reference here (the CUDA simulation is too slow).
    points = torch.cat([_rand(6, 2, 3000, 3, scale=4.0),
                        _lattice(2, 10, spacing=0.5)], 1).to(dtype)
    expected = sam_ops.furthest_point_sample_torch(points, 300)
    np.testing.assert_array_equal(
        sam_ops.furthest_point_sample_fallback(points, 300).numpy(),
        expected.numpy())


def test_fps_edge_sizes():
    one = _rand(7, 3, 1, 3)
    assert sam_ops.furthest_point_sample_fallback(one, 3).tolist() == \
        [[0, 0, 0]] * 3
    assert sam_ops.furthest_point_sample_fallback(one, 0).shape == (3, 0)
    empty_batch = torch.zeros(0, 5, 3)
    assert sam_ops.furthest_point_sample_fallback(empty_batch, 2).shape == \
        (0, 2)
    with pytest.raises(ValueError, match='empty'):
        sam_ops.furthest_point_sample_fallback(torch.zeros(1, 0, 3), 2)


# ----------------------------------------------------------------------- kNN
@pytest.mark.parametrize('name', sorted(CLOUDS))
@pytest.mark.parametrize('k', [1, 7, 40])
def test_knn_matches_brute_force(name, k):
    points = CLOUDS[name]
    centres = points[:, ::13].contiguous()
    index = sam_ops.knn_fallback(k, points, centres)
    np.testing.assert_array_equal(
        index.numpy(), ref.knn(k, points.numpy(), centres.numpy()))
    np.testing.assert_array_equal(
        index.numpy(), sam_ops.knn_torch(k, points, centres).numpy())


def test_knn_fewer_points_than_k_transposed_and_self():
    points = _rand(8, 2, 5, 3)
    centres = _rand(9, 2, 4, 3)
    index = sam_ops.knn_fallback(9, points, centres)
    np.testing.assert_array_equal(
        index.numpy(), ref.knn(9, points.numpy(), centres.numpy()))
    assert (index[:, 5:] == 0).all()
    transposed = sam_ops.knn_fallback(3,
                                      points.transpose(1, 2).contiguous(),
                                      centres.transpose(1, 2).contiguous(),
                                      True)
    np.testing.assert_array_equal(transposed.numpy(), index[:, :3].numpy())
    np.testing.assert_array_equal(
        sam_ops.knn_fallback(4, points).numpy(),
        sam_ops.knn_torch(4, points).numpy())
    no_points = sam_ops.knn_fallback(3, torch.zeros(2, 0, 3), centres)
    assert no_points.shape == (2, 3, 4) and (no_points == 0).all()


# ---------------------------------------------------------------- ball query
@pytest.mark.parametrize('name', sorted(CLOUDS))
@pytest.mark.parametrize('min_radius,max_radius,nsample', [(0., 0.5, 6),
                                                           (0.25, 0.75, 40),
                                                           (0., 1e-9, 3)])
def test_ball_query_matches_brute_force(name, min_radius, max_radius,
                                        nsample):
    # Lattice spacing 0.25: distances of exactly 0.25, 0.5, 0.75 sit on the
    # radii, where only the strict / non-strict comparisons decide.
    points = CLOUDS[name]
    centres = points[:, ::11].clone()
    centres[:, -2:] += 50.0  # empty balls
    index = sam_ops.ball_query_fallback(min_radius, max_radius, nsample,
                                        points, centres)
    np.testing.assert_array_equal(
        index.numpy(),
        ref.ball_query(min_radius, max_radius, nsample, points.numpy(),
                       centres.numpy()))


def test_ball_query_dense_balls_keep_lowest_indices():
    # 3000 points in a small cube: every ball holds hundreds of points and
    # only the 16 lowest indices may come back (the index pruning path).
    points = _rand(10, 1, 3000, 3, scale=0.3)
    centres = points[:, :64].contiguous()
    expected = sam_ops.ball_query_torch(0., 0.2, 16, points, centres)
    np.testing.assert_array_equal(
        sam_ops.ball_query_fallback(0., 0.2, 16, points, centres).numpy(),
        expected.numpy())


def test_stacked_ball_query_uneven_batches():
    points = torch.cat([CLOUDS['lattice'][0], CLOUDS['duplicates'][0],
                        _rand(11, 40, 3)])
    centres = torch.cat([points[:30:3], points[216:240:4],
                         torch.full((3, 3), 0.5), points[-5:]])
    centres[2] += 30.0  # empty ball
    # 4 scenes: lattice, duplicates, one without points, one without centres
    # beyond the last (uneven), and the random tail.
    point_counts = [216, 200, 0, 40]
    centre_counts = [10, 6, 3, 5]
    index = sam_ops.ball_query_fallback(
        0., 0.5, 7, points, centres,
        torch.tensor(point_counts, dtype=torch.int32),
        torch.tensor(centre_counts, dtype=torch.int32))
    expected = ref.stacked_ball_query(0.5, 7, points.numpy(), point_counts,
                                      centres.numpy(), centre_counts)
    np.testing.assert_array_equal(index.numpy(), expected)
    assert index[2].tolist() == [-1] + [0] * 6
    assert (index[16:19, 0] == -1).all()
    with pytest.raises(ValueError, match='sum to'):
        sam_ops.ball_query_fallback(
            0., 0.5, 7, points, centres,
            torch.tensor([1, 2, 3, 4], dtype=torch.int32),
            torch.tensor(centre_counts, dtype=torch.int32))


# ------------------------------------------------------------------ three_nn
@pytest.mark.parametrize('name', sorted(CLOUDS))
def test_three_nn_matches_brute_force(name):
    source = CLOUDS[name][:, ::5].contiguous()
    target = CLOUDS[name]
    dist, index = sam_ops.three_nn_fallback(target, source)
    ref_dist, ref_index = ref.three_nn(target.numpy(), source.numpy())
    np.testing.assert_array_equal(index.numpy(), ref_index)
    torch_dist, torch_index = sam_ops.three_nn_torch(target, source)
    np.testing.assert_array_equal(index.numpy(), torch_index.numpy())
    np.testing.assert_array_equal(dist.numpy(), torch_dist.numpy())


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_three_nn_fewer_sources_and_dtypes(dtype):
    target = _rand(12, 2, 30, 3).to(dtype)
    for num_source in (0, 1, 2, 17):
        source = _rand(13, 2, num_source, 3).to(dtype)
        dist, index = sam_ops.three_nn_fallback(target, source)
        torch_dist, torch_index = sam_ops.three_nn_torch(target, source)
        assert dist.dtype == dtype
        np.testing.assert_array_equal(index.numpy(), torch_index.numpy())
        np.testing.assert_array_equal(dist.float().numpy(),
                                      torch_dist.float().numpy())


# ------------------------------------------------------------ threads, paths
def test_threads_and_query_chunks_do_not_change_results(monkeypatch):
    points = _rand(14, 3, 2000, 3, scale=2.0)
    centres = points[:, :600].contiguous()
    threads = torch.get_num_threads()
    results = []
    monkeypatch.setattr(cpu_kernels, '_MIN_QUERIES_PER_TASK', 50)
    for num_threads in (1, 3):
        torch.set_num_threads(num_threads)
        try:
            # one element's queries are split over the threads
            assert len(cpu_kernels._query_ranges(600, 1)) == num_threads
            results.append([
                sam_ops.furthest_point_sample_fallback(points, 64),
                sam_ops.knn_fallback(8, points, centres),
                sam_ops.ball_query_fallback(0., 0.3, 8, points, centres),
                *sam_ops.three_nn_fallback(points, centres),
                sam_ops.ball_query_fallback(
                    0., 0.3, 8, points[0], centres[0],
                    torch.tensor([1500, 500], dtype=torch.int32),
                    torch.tensor([100, 500], dtype=torch.int32)),
            ])
        finally:
            torch.set_num_threads(threads)
    for single, spread in zip(*results):
        assert torch.equal(single, spread)


def test_dispatchers_route_cpu_tensors_to_kernels(monkeypatch):
    """The dispatchers' CPU path runs the kernels; the context manager and
    the environment variable switch back to the PyTorch implementations."""
    calls = []
    kernels = cpu_kernels.kernels()
    original = kernels.build_tree
    monkeypatch.setattr(kernels, 'build_tree',
                        lambda *a: calls.append(1) or original(*a))
    points = _rand(15, 1, 50, 3)
    expected = sam_ops.knn_torch(4, points)
    np.testing.assert_array_equal(
        dispatch.knn(4, points).numpy(), expected.numpy())
    assert calls
    calls.clear()
    with sam_ops.pure_torch_point_ops():
        assert cpu_kernels.backend() == 'torch'
        np.testing.assert_array_equal(
            dispatch.knn(4, points).numpy(), expected.numpy())
    # float64 (and a float64 partner) keeps the PyTorch path
    dispatch.knn(4, points.double())
    dispatch.knn(4, points, points.double())
    assert not calls
    monkeypatch.setenv(cpu_kernels.ENV_VAR, 'torch')
    dispatch.knn(4, points)
    assert not calls
    monkeypatch.setenv(cpu_kernels.ENV_VAR, 'cuda')
    with pytest.raises(ValueError, match='SAM_MTP_CPU_POINT_OPS'):
        dispatch.knn(4, points)


def test_non_finite_inputs_keep_pytorch_semantics():
    points = _rand(16, 1, 40, 3)
    points[0, 7] = float('nan')
    np.testing.assert_array_equal(
        sam_ops.furthest_point_sample_fallback(points, 10).numpy(),
        sam_ops.furthest_point_sample_torch(points, 10).numpy())


def test_jit_without_cache_location(monkeypatch):
    """Read-only install and no writable home: the kernels compile per
    process instead of failing at import."""
    numba = pytest.importorskip('numba')
    from projects.sam_mtp.ops import numba_kernels
    real_njit = numba.njit

    def njit(**options):
        if options.get('cache'):
            raise RuntimeError('cannot cache function: no locator available')
        return real_njit(**options)

    monkeypatch.setattr(numba, 'njit', njit)
    square = numba_kernels._jit(lambda x: x * x)
    assert square(3) == 9
    assert cpu_kernels.kernels().nearest_k._cache.cache_path


def test_ops_without_numba_use_pytorch(monkeypatch):
    """Without numba (e.g. a bare GPU machine) the ops warn once and give
    the PyTorch results."""
    monkeypatch.setitem(sys.modules, 'numba', None)
    monkeypatch.delitem(sys.modules, 'projects.sam_mtp.ops.numba_kernels')
    monkeypatch.delattr(sam_ops, 'numba_kernels')
    cpu_kernels._load_kernels.cache_clear()
    try:
        assert cpu_kernels.kernels() is None
        assert cpu_kernels.backend() == 'torch'
        points = _rand(17, 1, 30, 3)
        assert torch.equal(dispatch.furthest_point_sample(points, 5),
                           sam_ops.furthest_point_sample_torch(points, 5))
    finally:
        cpu_kernels._load_kernels.cache_clear()


def test_only_the_kernel_module_imports_numba():
    """The ops package imports without numba: numba_kernels is the only
    module that imports it, and only cpu_kernels imports that, lazily."""
    ops_dir = os.path.dirname(cpu_kernels.__file__)
    for name in sorted(os.listdir(ops_dir)):
        if not name.endswith('.py') or name == 'numba_kernels.py':
            continue
        with open(os.path.join(ops_dir, name)) as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ''] + [a.name for a in node.names]
            else:
                continue
            assert not any('numba' in n for n in names), (name, names)
