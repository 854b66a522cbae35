"""PyTorch implementation of mmcv's ``sigmoid_focal_loss`` op (any device).

mmdet's ``FocalLoss`` calls mmcv's compiled op for CUDA tensors (GroupFree3D's objectness and classification
losses) and its own Python loss elsewhere. With an mmcv built without CUDA kernels (the GPU check's fallback
mode) that compiled op raises ``implementation for device cuda:0 not found``; the dispatch sends such calls
here instead.

Ported from mmcv 2.1.0's ``sigmoid_focal_loss_cuda_kernel.cuh`` and ``mmcv/ops/focal_loss.py``: for logits
``x (N, C)`` and class indices ``t (N,)``, with ``p = sigmoid(x)``,

* column ``t[n]`` (the target class): ``-alpha (1 - p)^gamma log(max(p, FLT_MIN))``;
* every other column: ``-(1 - alpha) p^gamma log(max(1 - p, FLT_MIN))``; a row whose ``t`` is not a class
  index (``t == C``, mmdet's background) is negative in every column;
* times ``weight[t[n]]`` when a per-class weight ``(C,)`` is given;
* ``'mean'`` divides the sum by ``N`` (not by ``N * C``), ``'sum'`` sums, ``'none'`` keeps ``(N, C)``.

Deliberate differences: the loss is computed in float32 and returned in the input's dtype (the kernel computes in
half precision for half input); ``log(max(p, FLT_MIN))`` is evaluated as ``max(logsigmoid(x), log(FLT_MIN))``,
the same value without the underflow of ``p``; a background row with a per-class weight is weighted 1 (the
kernel reads ``weight[C]``, past the end of the vector); gradients come from autograd rather than the kernel's
closed form (equal wherever the ``FLT_MIN`` clamp is inactive).
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

_LOG_FLT_MIN = math.log(torch.finfo(torch.float32).tiny)
_REDUCTIONS = ('none', 'mean', 'sum')


def sigmoid_focal_loss_torch(input: Tensor, target: Tensor, gamma: float = 2.0, alpha: float = 0.25,
                             weight: Optional[Tensor] = None, reduction: str = 'mean') -> Tensor:
    """mmcv's ``sigmoid_focal_loss(input, target, gamma, alpha, weight, reduction)`` in PyTorch."""
    if target.dtype != torch.long:
        raise TypeError(f'sigmoid_focal_loss: target must be int64 class indices, got {target.dtype}')
    if input.dim() != 2 or target.dim() != 1 or input.size(0) != target.size(0):
        raise ValueError(f'sigmoid_focal_loss: expects input (N, C) and target (N,), got '
                         f'{tuple(input.shape)} and {tuple(target.shape)}')
    num_classes = input.size(1)
    if weight is not None and (weight.dim() != 1 or weight.size(0) != num_classes):
        raise ValueError(f'sigmoid_focal_loss: weight must be one value per class ({num_classes},), got '
                         f'{tuple(weight.shape)}')
    if reduction not in _REDUCTIONS:
        raise ValueError(f'sigmoid_focal_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}')
    logits = input.float()
    positive = target[:, None] == torch.arange(num_classes, device=target.device)
    prob = logits.sigmoid()
    log_p = F.logsigmoid(logits).clamp(min=_LOG_FLT_MIN)
    log_not_p = F.logsigmoid(-logits).clamp(min=_LOG_FLT_MIN)
    loss = torch.where(positive, -alpha * (1 - prob).pow(gamma) * log_p,
                       -(1 - alpha) * prob.pow(gamma) * log_not_p)
    if weight is not None:
        is_class = (target >= 0) & (target < num_classes)
        row_weight = torch.where(is_class, weight.float()[target.clamp(0, num_classes - 1)],
                                 torch.ones_like(target, dtype=torch.float32))
        loss = loss * row_weight[:, None]
    if reduction == 'mean':
        loss = loss.sum() / input.size(0)
    elif reduction == 'sum':
        loss = loss.sum()
    return loss.to(input.dtype)
