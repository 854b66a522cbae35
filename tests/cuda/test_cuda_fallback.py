"""The fallback mode on a GPU: CUDA tensors reach the PyTorch point ops whenever mmcv has no CUDA kernel (an mmcv
built with CPU ops only), give the CPU's results, and never touch mmcv's op."""
import pytest
import torch

import projects.sam_mtp.ops as sam_ops
from projects.sam_mtp.ops import dispatch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


def test_routing_follows_the_mmcv_build():
    routing = set(dispatch.kernel_routing('cuda').values())
    assert routing == ({'mmcv'} if dispatch.mmcv_cuda_build() else {'pytorch'})


def _calls():
    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(2, 3000, 3, generator=g) * 3
    centres = xyz[:, :200].contiguous()
    features = torch.rand(2, 6, 3000, generator=g)
    index = torch.randint(0, 3000, (2, 200), generator=g, dtype=torch.int32)
    group_index = torch.randint(0, 3000, (2, 200, 8), generator=g, dtype=torch.int32)
    three_index = torch.randint(0, 200, (2, 3000, 3), generator=g, dtype=torch.int32)
    weight = torch.rand(2, 3000, 3, generator=g)
    boxes = torch.cat([torch.rand(50, 3, generator=g) * 3, torch.rand(50, 3, generator=g) + 0.3,
                       (torch.rand(50, 1, generator=g) - 0.5) * 6], 1)
    scores = torch.rand(50, generator=g)
    return dict(
        furthest_point_sample=(xyz, 256),
        furthest_point_sample_with_dist=(torch.cdist(centres, centres)**2, 32),
        gather_points=(features, index),
        grouping_operation=(features, group_index),
        ball_query=(0., 0.3, 16, xyz, centres),
        knn=(8, xyz, centres),
        three_nn=(xyz, centres),
        three_interpolate=(features[..., :200].contiguous(), three_index, weight),
        points_in_boxes_part=(xyz[:1], boxes[None]),
        points_in_boxes_all=(xyz[:1], boxes[None]),
        boxes_overlap_bev=(boxes, boxes),
        boxes_iou3d=(boxes, boxes),
        nms3d=(boxes, scores, 0.3),
        nms3d_normal=(boxes, scores, 0.3),
        sigmoid_focal_loss=(torch.randn(40, 18, generator=g) * 3, torch.randint(0, 19, (40, ), generator=g),
                            2.0, 0.25, None, 'none'),
    )


def test_cuda_tensors_without_kernels_use_pytorch_and_match_cpu(monkeypatch):
    """The no-kernel state is set for every op on CUDA (what an mmcv built without CUDA reports); mmcv's ops are
    replaced by tripwires, so any call to them fails the test."""
    calls = _calls()
    assert set(calls) == set(dispatch.DISPATCHERS)
    monkeypatch.setattr(dispatch, '_MISSING_KERNELS',
                        {(name, 'cuda'): 'test: no CUDA kernel' for name in dispatch.DISPATCHERS})

    def tripwire(*args):
        raise AssertionError('mmcv op called for a CUDA tensor in fallback mode')

    for name in list(dispatch._ORIGINALS):
        monkeypatch.setitem(dispatch._ORIGINALS, name, tripwire)
    for name, args in calls.items():
        op = getattr(sam_ops, name)
        cpu = op(*args)
        gpu = op(*[a.cuda() if torch.is_tensor(a) else a for a in args])
        cpu, gpu = (cpu, gpu) if isinstance(cpu, tuple) else ((cpu, ), (gpu, ))
        for c, g in zip(cpu, gpu):
            assert g.is_cuda, name
            if c.is_floating_point():
                torch.testing.assert_close(g.cpu(), c, rtol=1e-5, atol=1e-5, msg=name)
            elif name == 'knn':  # equal up to the order of exactly tied distances
                assert torch.equal(g.cpu().sort(1).values, c.sort(1).values), name
            else:
                assert torch.equal(g.cpu(), c), name
    assert dispatch.kernel_routing('cuda') == {name: 'pytorch' for name in dispatch.DISPATCHERS}


def test_mmcv_modules_run_on_cuda_in_either_mode():
    """mmcv's own wrappers (QueryAndGroup, PointsSampler) look the ops up through the dispatch, so they run on
    CUDA tensors with or without mmcv's kernels."""
    mmcv_ops = pytest.importorskip('mmcv.ops')
    xyz = torch.rand(2, 500, 3, device='cuda')
    features = torch.rand(2, 4, 500, device='cuda', requires_grad=True)
    index = mmcv_ops.PointsSampler([64], ['D-FPS'])(xyz, features.detach())
    centres = sam_ops.gather_points(xyz.transpose(1, 2).contiguous(), index).transpose(1, 2).contiguous()
    grouped = mmcv_ops.QueryAndGroup(0.3, 8)(xyz, centres, features)
    assert grouped.shape == (2, 3 + 4, 64, 8) and grouped.is_cuda
    grouped.sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
