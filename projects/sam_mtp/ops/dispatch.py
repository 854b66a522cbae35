"""Device dispatch between mmcv's compiled 3D point ops and the pure-PyTorch
implementations, and their installation into mmcv / mmdet / mmdet3d.

Every public function here has the signature of the mmcv op of the same name.
A tensor goes to mmcv's original op when the installed mmcv has a compiled
kernel of that op for the tensor's device; everything else runs the PyTorch
implementation, which works on any device:

* CPU (and MPS, ...) tensors: mmcv has no kernels of these ops there;
* CUDA tensors when mmcv was built without CUDA (``MMCV_WITH_OPS=1
  FORCE_CUDA=0``, e.g. a CPU build reused on a GPU node): known at import from
  ``mmcv.ops.get_compiling_cuda_version()``;
* any other op/device pair for which mmcv answers "implementation for device
  ... not found" (a partial build, an NPU/MLU build without that op): found
  on the first call, remembered, and warned about once;
* tensors of a dtype mmcv's kernel does not take (bfloat16 under ``--amp``;
  float16 for furthest point sampling and the 3D IoU / NMS);
* every device when mmcv has no compiled ops at all (``mmcv-lite``).

So the plugin runs with any mmcv build; :func:`kernel_routing` tells which
implementation each op uses on a device.

:func:`install_cpu_fallbacks` rebinds mmcv's op objects, *by identity*, to
these dispatchers wherever they are bound: ``mmcv.ops``, its submodules (for
example ``mmcv.ops.group_points`` binds ``ball_query`` for ``QueryAndGroup``)
and any already imported ``mmcv*`` / ``mmdet*`` module or class attribute
(mmdet3d modules do ``from mmcv.ops import furthest_point_sample``). Modules
imported later pick the dispatchers up from the patched ``mmcv.ops``.
"""
import importlib
import logging
import re
import sys
from typing import Callable, Dict, Iterable, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor

# The PyTorch implementations, ``<op>_torch``: _run looks them up by name.
from .boxes import (  # noqa: F401
    boxes_iou3d_torch,
    boxes_overlap_bev_torch,
    nms3d_normal_torch,
    nms3d_torch,
    points_in_boxes_all_torch,
    points_in_boxes_part_torch,
)
from .grouping import gather_points_torch, grouping_operation_torch, three_interpolate_torch  # noqa: F401
from .losses import sigmoid_focal_loss_torch  # noqa: F401

# CPU tensors of these four ops run the numba kd-tree kernels (PyTorch
# elsewhere, or without numba): the ``*_fallback`` routers, bound here under
# the names that _run looks up.
from .neighbors import ball_query_fallback as ball_query_torch  # noqa: F401
from .neighbors import knn_fallback as knn_torch  # noqa: F401
from .neighbors import three_nn_fallback as three_nn_torch  # noqa: F401
from .sampling import furthest_point_sample_fallback as furthest_point_sample_torch  # noqa: F401
from .sampling import furthest_point_sample_with_dist_torch  # noqa: F401

# Device types for which mmcv 2.x can be built with kernels of these ops.
MMCV_KERNEL_DEVICES = frozenset({'cuda', 'npu', 'mlu', 'musa'})

# mmcv's device registry refuses an op/device pair it has no kernel for with
# "<op>_impl: implementation for device <device> not found." (a RuntimeError
# raised before any kernel runs).
_KERNEL_NOT_FOUND = re.compile(r'implementation for device \S+ not found')

# op name -> mmcv submodule that defines it.
_DEFINING_MODULES = {
    'furthest_point_sample': 'mmcv.ops.furthest_point_sample',
    'furthest_point_sample_with_dist': 'mmcv.ops.furthest_point_sample',
    'gather_points': 'mmcv.ops.gather_points',
    'grouping_operation': 'mmcv.ops.group_points',
    'ball_query': 'mmcv.ops.ball_query',
    'knn': 'mmcv.ops.knn',
    'three_nn': 'mmcv.ops.three_nn',
    'three_interpolate': 'mmcv.ops.three_interpolate',
    'points_in_boxes_part': 'mmcv.ops.points_in_boxes',
    'points_in_boxes_all': 'mmcv.ops.points_in_boxes',
    'boxes_overlap_bev': 'mmcv.ops.iou3d',
    'boxes_iou3d': 'mmcv.ops.iou3d',
    'nms3d': 'mmcv.ops.iou3d',
    'nms3d_normal': 'mmcv.ops.iou3d',
    # Not a point op: mmdet's FocalLoss (GroupFree3D) calls it for CUDA
    # tensors, so an mmcv built without CUDA needs it routed too.
    'sigmoid_focal_loss': 'mmcv.ops.focal_loss',
}

# Module name prefixes scanned by install / uninstall.
DEFAULT_MODULE_PREFIXES = ('mmcv', 'mmdet', 'mmdet3d')

# Marker attribute set on every dispatcher; its value is the op name.
_MARKER = '_sam_mtp_point_op'


def _load_originals() -> Dict[str, Callable]:
    """mmcv's op objects, read from their defining submodules.

    If the dispatchers are installed already (e.g. this module was reloaded),
    the originals are recovered from the dispatchers found there.
    """
    originals, missing = {}, []
    for name, module_name in _DEFINING_MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except Exception:  # no compiled mmcv, or no mmcv at all
            missing.append(name)
            continue
        bound = getattr(module, name, None)
        bound = getattr(bound, '_sam_mtp_original', bound)
        if bound is None:
            missing.append(name)
        else:
            originals[name] = bound
    if missing:
        print_log(
            'sam_mtp.ops: mmcv does not provide compiled '
            f'{", ".join(missing)}; the PyTorch implementations serve every '
            'device for these ops',
            logger='current',
            level=logging.WARNING)
    return originals


_ORIGINALS: Dict[str, Callable] = _load_originals()


def original_op(name: str) -> Optional[Callable]:
    """mmcv's original op object for ``name`` (None if mmcv lacks it)."""
    return _ORIGINALS.get(name)


def mmcv_cuda_build() -> Optional[str]:
    """The CUDA (or HIP) version mmcv's compiled ops were built with; None
    when they have no CUDA kernels or mmcv has no compiled ops."""
    try:
        from mmcv.ops import get_compiling_cuda_version
        version = str(get_compiling_cuda_version())
    except Exception:  # mmcv-lite, or no mmcv at all
        return None
    return None if 'not available' in version else version


def _known_missing_kernels() -> Dict[Tuple[str, str], str]:
    """(op, device type) -> why mmcv has no kernel, as known at import."""
    if not _ORIGINALS or mmcv_cuda_build() is not None:
        return {}
    return {(name, 'cuda'): 'mmcv was built without CUDA kernels'
            for name in _ORIGINALS}


# The dtypes mmcv 2.1's kernels of these ops take (AT_DISPATCH_FLOATING_TYPES_
# AND_HALF; furthest point sampling and the 3D IoU / NMS read float32 only).
# Other dtypes, bfloat16 under --amp in particular, go to the PyTorch
# implementations, which take any floating dtype.
_FLOAT_HALF_DOUBLE = frozenset({torch.float32, torch.float64, torch.float16})
_MMCV_DTYPES = {
    name: frozenset({torch.float32})
    for name in ('furthest_point_sample', 'furthest_point_sample_with_dist',
                 'boxes_overlap_bev', 'boxes_iou3d', 'nms3d', 'nms3d_normal')
}

# (op name, device type) pairs without a compiled mmcv kernel -> the reason.
# Filled at import from mmcv's build info, and at run time from mmcv's
# "implementation for device ... not found" answers.
_MISSING_KERNELS: Dict[Tuple[str, str], str] = _known_missing_kernels()
# (op, device type, reason) triples already announced: one warning each.
_WARNED: set = set()


def mmcv_kernel_available(name: str, device_type: str = 'cuda') -> bool:
    """Whether a tensor of ``device_type`` goes to mmcv's kernel of ``name``.

    A pair that mmcv has not refused yet counts as available (an NPU/MLU build
    is only known to lack an op once the op has been called there).
    """
    return (name in _ORIGINALS and device_type in MMCV_KERNEL_DEVICES
            and (name, device_type) not in _MISSING_KERNELS)


def kernel_routing(device_type: str = 'cuda') -> Dict[str, str]:
    """op name -> ``'mmcv'`` or ``'pytorch'``: the implementation a tensor of
    ``device_type`` uses (see :func:`mmcv_kernel_available`)."""
    return {
        name: 'mmcv' if mmcv_kernel_available(name, device_type) else 'pytorch'
        for name in _DEFINING_MODULES
    }


def _announce(name: str, device_type: str, reason: str) -> None:
    """One warning per op, device type and reason for a tensor that mmcv's
    kernels could have served but does not."""
    if (name, device_type, reason) in _WARNED:
        return
    _WARNED.add((name, device_type, reason))
    print_log(
        f'sam_mtp.ops: {name} on {device_type} tensors uses the PyTorch '
        f'implementation ({reason})',
        logger='current',
        level=logging.WARNING)


def _run(name: str, tensor: object, args: tuple):
    """Call mmcv's ``name`` when it has a kernel for ``tensor``'s device and
    dtype, otherwise (or when mmcv refuses the device) the PyTorch one."""
    device_type = tensor.device.type if isinstance(tensor, Tensor) else None
    if device_type in MMCV_KERNEL_DEVICES and name in _ORIGINALS:
        if not mmcv_kernel_available(name, device_type):
            _announce(name, device_type, _MISSING_KERNELS[(name, device_type)])
        elif tensor.dtype not in _MMCV_DTYPES.get(name, _FLOAT_HALF_DOUBLE):
            _announce(name, device_type,
                      f"mmcv's kernel has no {str(tensor.dtype)[6:]}")
        else:
            try:
                return _ORIGINALS[name](*args)
            except RuntimeError as error:
                if not _KERNEL_NOT_FOUND.search(str(error)):
                    raise
                reason = 'mmcv has no compiled kernel of it for this device'
                _MISSING_KERNELS[(name, device_type)] = reason
                _announce(name, device_type, reason)
    # Looked up at call time (``<op>_torch`` of this module), so that a
    # replaced implementation is the one used.
    return globals()[f'{name}_torch'](*args)


def _dispatcher(name: str):
    """Decorator marking a dispatcher and linking it to mmcv's original."""

    def wrap(fn):
        setattr(fn, _MARKER, name)
        fn._sam_mtp_original = _ORIGINALS.get(name)
        fn.__qualname__ = fn.__name__ = name
        return fn

    return wrap


# ------------------------------------------------------------- dispatchers
@_dispatcher('furthest_point_sample')
def furthest_point_sample(points_xyz: Tensor, num_points: int) -> Tensor:
    """(B, N, 3) -> (B, num_points) int32 D-FPS indices (see
    :func:`~.sampling.furthest_point_sample_torch`)."""
    return _run('furthest_point_sample', points_xyz, (points_xyz, num_points))


@_dispatcher('furthest_point_sample_with_dist')
def furthest_point_sample_with_dist(points_dist: Tensor,
                                    num_points: int) -> Tensor:
    """(B, N, N) distances -> (B, num_points) int32 FPS indices."""
    return _run('furthest_point_sample_with_dist', points_dist,
                (points_dist, num_points))


@_dispatcher('gather_points')
def gather_points(features: Tensor, indices: Tensor) -> Tensor:
    """(B, C, N), (B, M) -> (B, C, M); differentiable w.r.t. features."""
    return _run('gather_points', features, (features, indices))


@_dispatcher('grouping_operation')
def grouping_operation(features: Tensor,
                       indices: Tensor,
                       features_batch_cnt: Optional[Tensor] = None,
                       indices_batch_cnt: Optional[Tensor] = None) -> Tensor:
    """(B, C, N), (B, npoint, nsample) -> (B, C, npoint, nsample), or the
    stacked layout; differentiable w.r.t. features."""
    return _run('grouping_operation', features,
                (features, indices, features_batch_cnt, indices_batch_cnt))


@_dispatcher('ball_query')
def ball_query(min_radius: float,
               max_radius: float,
               sample_num: int,
               xyz: Tensor,
               center_xyz: Tensor,
               xyz_batch_cnt: Optional[Tensor] = None,
               center_xyz_batch_cnt: Optional[Tensor] = None) -> Tensor:
    """-> (B, npoint, sample_num) int32 neighbour indices (see
    :func:`~.neighbors.ball_query_torch`)."""
    return _run('ball_query', xyz,
                (min_radius, max_radius, sample_num, xyz, center_xyz,
                 xyz_batch_cnt, center_xyz_batch_cnt))


@_dispatcher('knn')
def knn(k: int,
        xyz: Tensor,
        center_xyz: Optional[Tensor] = None,
        transposed: bool = False) -> Tensor:
    """-> (B, k, npoint) int32 indices, nearest first."""
    return _run('knn', xyz, (k, xyz, center_xyz, transposed))


@_dispatcher('three_nn')
def three_nn(target: Tensor, source: Tensor) -> Tuple[Tensor, Tensor]:
    """(B, N, 3), (B, M, 3) -> (dist (B, N, 3), int32 idx (B, N, 3))."""
    return _run('three_nn', target, (target, source))


@_dispatcher('three_interpolate')
def three_interpolate(features: Tensor, indices: Tensor,
                      weight: Tensor) -> Tensor:
    """(B, C, M), (B, N, 3), (B, N, 3) -> (B, C, N); differentiable w.r.t.
    features."""
    return _run('three_interpolate', features, (features, indices, weight))


@_dispatcher('points_in_boxes_part')
def points_in_boxes_part(points: Tensor, boxes: Tensor) -> Tensor:
    """(B, M, 3), (B, T, 7) -> (B, M) int32 first box index or -1."""
    return _run('points_in_boxes_part', points, (points, boxes))


@_dispatcher('points_in_boxes_all')
def points_in_boxes_all(points: Tensor, boxes: Tensor) -> Tensor:
    """(B, M, 3), (B, T, 7) -> (B, M, T) int32 0/1 membership."""
    return _run('points_in_boxes_all', points, (points, boxes))


@_dispatcher('boxes_overlap_bev')
def boxes_overlap_bev(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(M, 7), (N, 7) -> (M, N) rotated BEV intersection areas."""
    return _run('boxes_overlap_bev', boxes_a, (boxes_a, boxes_b))


@_dispatcher('boxes_iou3d')
def boxes_iou3d(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """(M, 7), (N, 7) -> (M, N) rotated 3D IoU."""
    return _run('boxes_iou3d', boxes_a, (boxes_a, boxes_b))


@_dispatcher('nms3d')
def nms3d(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Rotated BEV NMS of (N, 7) boxes -> int64 kept indices."""
    return _run('nms3d', boxes, (boxes, scores, iou_threshold))


@_dispatcher('nms3d_normal')
def nms3d_normal(boxes: Tensor, scores: Tensor,
                 iou_threshold: float) -> Tensor:
    """Axis-aligned BEV NMS of (N, 7) boxes -> int64 kept indices."""
    return _run('nms3d_normal', boxes, (boxes, scores, iou_threshold))


@_dispatcher('sigmoid_focal_loss')
def sigmoid_focal_loss(input: Tensor,
                       target: Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight: Optional[Tensor] = None,
                       reduction: str = 'mean') -> Tensor:
    """Sigmoid focal loss of (N, C) logits and (N,) int64 classes (see
    :mod:`.losses`)."""
    return _run('sigmoid_focal_loss', input,
                (input, target, gamma, alpha, weight, reduction))


DISPATCHERS: Dict[str, Callable] = {
    fn.__name__: fn
    for fn in (furthest_point_sample, furthest_point_sample_with_dist,
               gather_points, grouping_operation, ball_query, knn, three_nn,
               three_interpolate, points_in_boxes_part, points_in_boxes_all,
               boxes_overlap_bev, boxes_iou3d, nms3d, nms3d_normal,
               sigmoid_focal_loss)
}


def is_dispatcher(obj: object) -> bool:
    """Whether ``obj`` is one of the dispatchers of this module."""
    return getattr(obj, _MARKER, None) is not None


# ------------------------------------------------------------ installation
def _scanned_modules(prefixes: Iterable[str]):
    prefixes = tuple(prefixes)
    for module_name, module in list(sys.modules.items()):
        if module is None:
            continue
        if not any(module_name == p or module_name.startswith(p + '.')
                   for p in prefixes):
            continue
        yield module_name, module


def _rebind(replacements: Dict[int, Callable],
            prefixes: Iterable[str]) -> Dict[str, str]:
    """Replace, by identity, every module / class attribute whose value is a
    key of ``replacements`` (``id`` of an object) with the mapped object.

    Returns:
        dict: ``'module.attr'`` -> op name of each rebinding made.
    """
    rebound = {}
    for module_name, module in _scanned_modules(prefixes):
        namespace = getattr(module, '__dict__', None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            target = replacements.get(id(value))
            if target is not None:
                setattr(module, attr, target)
                rebound[f'{module_name}.{attr}'] = target.__name__
            elif isinstance(value, type) and \
                    getattr(value, '__module__', None) == module_name:
                # Class bodies may alias an op (``sampler = knn``).
                for class_attr, class_value in list(vars(value).items()):
                    target = replacements.get(id(class_value))
                    if target is not None:
                        setattr(value, class_attr, target)
                        rebound[f'{module_name}.{attr}.{class_attr}'] = \
                            target.__name__
    return rebound


def install_cpu_fallbacks(
        prefixes: Iterable[str] = DEFAULT_MODULE_PREFIXES) -> Dict[str, str]:
    """Rebind mmcv's point ops to the device dispatchers (idempotent).

    Args:
        prefixes (Iterable[str]): names of the top-level packages whose
            imported modules are scanned; ``mmcv.ops`` is always imported
            first so that later imports see the dispatchers.

    Returns:
        dict: ``'module.attr'`` -> op name of each binding changed by this
        call (empty when already installed).
    """
    try:
        importlib.import_module('mmcv.ops')
    except Exception as error:
        print_log(
            f'sam_mtp.ops: mmcv.ops is not importable ({error}); nothing to '
            'install',
            logger='current',
            level=logging.WARNING)
        return {}
    replacements = {
        id(_ORIGINALS[name]): fn
        for name, fn in DISPATCHERS.items() if name in _ORIGINALS
    }
    return _rebind(replacements, tuple(prefixes) + ('mmcv', ))


def uninstall_cpu_fallbacks(
        prefixes: Iterable[str] = DEFAULT_MODULE_PREFIXES) -> Dict[str, str]:
    """Undo :func:`install_cpu_fallbacks`: every binding to a dispatcher in
    the scanned modules goes back to mmcv's original op."""
    replacements = {
        id(fn): _ORIGINALS[name]
        for name, fn in DISPATCHERS.items() if name in _ORIGINALS
    }
    return _rebind(replacements, tuple(prefixes) + ('mmcv', ))


def cpu_fallbacks_installed() -> bool:
    """Whether ``mmcv.ops`` currently binds the dispatchers."""
    module = sys.modules.get('mmcv.ops')
    if module is None:
        return False
    return all(
        getattr(module, name, None) is fn for name, fn in DISPATCHERS.items()
        if name in _ORIGINALS)
