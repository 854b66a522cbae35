"""The PyTorch port of mmcv's sigmoid_focal_loss (used for CUDA tensors when mmcv has no CUDA kernel, e.g. GroupFree3D
on the GPU check's fallback mode): values against the kernel's formula evaluated element by element, against mmdet's
own Python focal loss, gradients, dtype, errors and its installation where mmdet binds mmcv's op."""
import math

import pytest
import torch
import torch.nn.functional as F

import projects.sam_mtp.ops as sam_ops
from projects.sam_mtp.ops import dispatch


def kernel_formula(x, t, gamma, alpha, weight):
    """mmcv 2.1.0's sigmoid_focal_loss_cuda_kernel.cuh, one element at a time in Python floats."""
    n, c = x.shape
    out = [[0.0] * c for _ in range(n)]
    for i in range(n):
        for j in range(c):
            p = 1 / (1 + math.exp(-float(x[i, j])))
            if int(t[i]) == j:
                out[i][j] = -alpha * (1 - p)**gamma * math.log(max(p, 1.1754943508222875e-38))
            else:
                out[i][j] = -(1 - alpha) * p**gamma * math.log(max(1 - p, 1.1754943508222875e-38))
            if weight is not None and 0 <= int(t[i]) < c:
                out[i][j] *= float(weight[int(t[i])])
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize('gamma,alpha', [(2.0, 0.25), (1.5, 0.6), (0.0, 0.5)])
def test_values_match_the_kernel_formula_and_its_reductions(gamma, alpha):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g) * 4
    t = torch.randint(0, 6, (12, ), generator=g)  # 5 = background: negative in every column
    t[0] = 5
    weight = torch.rand(5, generator=g) + 0.5
    for w in (None, weight):
        expected = kernel_formula(x, t, gamma, alpha, w)
        got = sam_ops.sigmoid_focal_loss_torch(x, t, gamma, alpha, w, 'none')
        assert got.shape == (12, 5) and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sam_ops.sigmoid_focal_loss_torch(x, t, gamma, alpha, w, 'sum').double(),
                                   expected.sum(), rtol=1e-5, atol=1e-5)
        # 'mean' divides by the number of rows, not of elements (mmcv's convention).
        torch.testing.assert_close(sam_ops.sigmoid_focal_loss_torch(x, t, gamma, alpha, w, 'mean').double(),
                                   expected.sum() / 12, rtol=1e-5, atol=1e-5)


def test_values_match_mmdets_python_focal_loss_and_saturate_like_the_kernel():
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 7, generator=g) * 3
    t = torch.randint(0, 8, (30, ), generator=g)
    one_hot = F.one_hot(t, 8)[:, :7].float()
    reference = py_sigmoid_focal_loss(x, one_hot, gamma=2.0, alpha=0.25, reduction='none')
    torch.testing.assert_close(sam_ops.sigmoid_focal_loss_torch(x, t, 2.0, 0.25, None, 'none'), reference,
                               rtol=1e-5, atol=1e-6)
    # A confidently wrong logit: the kernel clamps log(p) at log(FLT_MIN) = -87.34; so does the port.
    far = sam_ops.sigmoid_focal_loss_torch(torch.tensor([[-200.0]]), torch.tensor([0]), 0.0, 1.0, None, 'none')
    assert far.item() == pytest.approx(-math.log(1.1754943508222875e-38), rel=1e-6)


def test_gradients_match_the_kernels_closed_form_and_half_input_stays_half():
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(9, 4, generator=g) * 2).requires_grad_()
    t = torch.randint(0, 5, (9, ), generator=g)
    gamma, alpha = 2.0, 0.25
    sam_ops.sigmoid_focal_loss_torch(x, t, gamma, alpha, None, 'sum').backward()
    p = x.detach().sigmoid()
    pos = F.one_hot(t, 5)[:, :4].bool()
    # mmcv's backward kernel, written out.
    grad_pos = -alpha * (1 - p)**gamma * (1 - p - gamma * p * p.log())
    grad_neg = -(1 - alpha) * p**gamma * (gamma * (1 - p) * (1 - p).log() - p)
    torch.testing.assert_close(x.grad, torch.where(pos, grad_pos, grad_neg), rtol=1e-4, atol=1e-6)
    half = sam_ops.sigmoid_focal_loss_torch(x.detach().half(), t, gamma, alpha, None, 'mean')
    assert half.dtype == torch.float16


def test_bad_input_raises_clear_errors():
    x, t = torch.zeros(3, 4), torch.zeros(3, dtype=torch.long)
    with pytest.raises(TypeError, match='int64 class indices'):
        sam_ops.sigmoid_focal_loss_torch(x, t.int())
    with pytest.raises(ValueError, match=r'input \(N, C\) and target \(N,\)'):
        sam_ops.sigmoid_focal_loss_torch(x, t[:2])
    with pytest.raises(ValueError, match=r'one value per class \(4,\)'):
        sam_ops.sigmoid_focal_loss_torch(x, t, weight=torch.ones(3))
    with pytest.raises(ValueError, match='reduction must be one of'):
        sam_ops.sigmoid_focal_loss_torch(x, t, reduction='avg')


def test_mmdet_focal_loss_calls_the_dispatcher_which_serves_cpu_tensors():
    pytest.importorskip('mmcv.ops')
    from mmdet.models.losses import focal_loss
    assert focal_loss._sigmoid_focal_loss is dispatch.DISPATCHERS['sigmoid_focal_loss']
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(6, 3, generator=g), torch.randint(0, 4, (6, ), generator=g)
    # mmdet's CUDA-path wrapper, here fed CPU tensors: mmcv has no CPU kernel of this op, the port answers.
    torch.testing.assert_close(focal_loss.sigmoid_focal_loss(x, t, reduction='sum'),
                               sam_ops.sigmoid_focal_loss_torch(x, t, 2.0, 0.25, None, 'sum'))
