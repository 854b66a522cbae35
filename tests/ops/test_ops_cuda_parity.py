"""mmcv's CUDA kernels against the PyTorch implementations on the CPU.

Skipped (visibly) without a GPU or without a CUDA build of mmcv (the GPU
check's fallback mode; tests/cuda/ covers the dispatch there).
"""
import pytest
import torch

import projects.sam_mtp.ops as sam_ops
from projects.sam_mtp.ops.dispatch import mmcv_kernel_available

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.fixture(scope='module')
def cuda_op():
    pytest.importorskip('mmcv.ops')

    def get(name):
        if not mmcv_kernel_available(name, 'cuda'):
            pytest.skip(f'mmcv has no compiled CUDA kernel of {name}')
        return sam_ops.original_op(name)

    return get


def _cloud(seed, batch, num, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, num, 3, generator=g) * scale


def test_fps_parity(cuda_op):
    points = _cloud(0, 2, 3000)
    gpu = cuda_op('furthest_point_sample')(points.cuda(), 256)
    cpu = sam_ops.furthest_point_sample(points, 256)
    assert torch.equal(gpu.cpu(), cpu)
    # duplicates and more samples than points: the tie order matters
    dup = _cloud(1, 1, 7)[:, torch.randint(0, 7, (300, ))].contiguous()
    assert torch.equal(
        cuda_op('furthest_point_sample')(dup.cuda(), 20).cpu(),
        sam_ops.furthest_point_sample(dup, 20))
    # the dispatcher routes CUDA tensors to mmcv
    assert torch.equal(
        sam_ops.furthest_point_sample(points.cuda(), 256).cpu(), cpu)
    dist = torch.cdist(points, points)**2
    assert torch.equal(
        cuda_op('furthest_point_sample_with_dist')(dist.cuda(), 64).cpu(),
        sam_ops.furthest_point_sample_with_dist(dist, 64))


def test_neighbour_parity(cuda_op):
    points = _cloud(2, 2, 2000)
    centres = points[:, :300].contiguous()
    for radii in ((0., 0.2), (0.05, 0.3)):
        gpu = cuda_op('ball_query')(radii[0], radii[1], 16, points.cuda(),
                                    centres.cuda())
        cpu = sam_ops.ball_query(radii[0], radii[1], 16, points, centres)
        assert torch.equal(gpu.cpu(), cpu)
    gpu = cuda_op('knn')(8, points.cuda(), centres.cuda(), False).cpu()
    cpu = sam_ops.knn(8, points, centres)
    assert gpu.shape == cpu.shape == (2, 8, 300)

    def knn_dist(index):
        near = torch.gather(points[:, None].expand(-1, 8, -1, -1), 2,
                            index.long()[..., None].expand(-1, -1, -1, 3))
        return (near - centres[:, None]).norm(dim=-1)

    # Identical up to the order of exactly equal distances.
    torch.testing.assert_close(knn_dist(gpu), knn_dist(cpu))
    dist_g, idx_g = cuda_op('three_nn')(points.cuda(), centres.cuda())
    dist_c, idx_c = sam_ops.three_nn(points, centres)
    assert torch.equal(idx_g.cpu(), idx_c)
    torch.testing.assert_close(dist_g.cpu(), dist_c)


def test_gather_parity_and_gradients(cuda_op):
    features = torch.rand(2, 6, 50, dtype=torch.float32)
    index = torch.randint(0, 50, (2, 20), dtype=torch.int32)
    group_index = torch.randint(0, 50, (2, 10, 4), dtype=torch.int32)
    weight = torch.rand(2, 30, 3)
    interp_index = torch.randint(0, 50, (2, 30, 3), dtype=torch.int32)
    for name, args in (('gather_points', (index, )), ('grouping_operation',
                                                      (group_index, )),
                       ('three_interpolate', (interp_index, weight))):
        f_cpu = features.clone().requires_grad_()
        f_gpu = features.cuda().requires_grad_()
        out_cpu = getattr(sam_ops, name)(f_cpu, *args)
        out_gpu = cuda_op(name)(f_gpu, *[a.cuda() for a in args])
        torch.testing.assert_close(out_gpu.cpu(), out_cpu)
        grad = torch.rand_like(out_cpu)
        out_cpu.backward(grad)
        out_gpu.backward(grad.cuda())
        torch.testing.assert_close(f_gpu.grad.cpu(), f_cpu.grad)


def test_box_parity(cuda_op):
    g = torch.Generator().manual_seed(3)
    boxes = torch.cat([
        torch.rand(60, 3, generator=g) * 4,
        torch.rand(60, 3, generator=g) + 0.3,
        (torch.rand(60, 1, generator=g) - 0.5) * 6
    ], 1)
    scores = torch.rand(60, generator=g)
    points = torch.rand(1, 500, 3, generator=g) * 4
    for name in ('points_in_boxes_all', 'points_in_boxes_part'):
        gpu = cuda_op(name)(points.cuda(), boxes[None].cuda())
        assert torch.equal(gpu.cpu(),
                           getattr(sam_ops, name)(points, boxes[None]))
    torch.testing.assert_close(
        cuda_op('boxes_overlap_bev')(boxes.cuda(), boxes.cuda()).cpu(),
        sam_ops.boxes_overlap_bev(boxes, boxes),
        rtol=1e-4,
        atol=1e-5)
    for name in ('nms3d', 'nms3d_normal'):
        gpu = cuda_op(name)(boxes.cuda(), scores.cuda(), 0.3).cpu()
        assert torch.equal(gpu, getattr(sam_ops, name)(boxes, scores, 0.3))


def test_torch_implementations_run_on_cuda():
    """The PyTorch implementations are device agnostic."""
    points = _cloud(4, 1, 500)
    for fn, args in (
        (sam_ops.furthest_point_sample_torch, (points, 32)),
        (sam_ops.ball_query_torch, (0., 0.3, 8, points, points[:, :32])),
        (sam_ops.knn_torch, (4, points, points[:, :32])),
    ):
        cpu = fn(*args)
        gpu = fn(*[a.cuda() if torch.is_tensor(a) else a for a in args])
        assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)
