"""Fast CPU paths of the point ops: the numba kd-tree kernels of
:mod:`.numba_kernels` on torch tensors, batches and queries spread over
threads.

The ops layer (``*_fallback`` in :mod:`.sampling` and :mod:`.neighbors`)
sends validated CPU tensors here and everything else (CUDA / MPS tensors,
non-finite coordinates, an environment without numba) to the pure-PyTorch
implementations; both give identical results.

Switches, for benchmarks and tests: the context manager
:func:`pure_torch_point_ops`, or the environment variable
``SAM_MTP_CPU_POINT_OPS=torch``, send CPU tensors to the pure-PyTorch
implementations as well.

Threads: ``torch.get_num_threads()`` of them (1 reproduces the single-thread
numbers of docs/benchmarks.md); batch elements, and the queries of one
element, are spread over a thread pool while the kernels run without the GIL.
"""
import contextlib
import functools
import logging
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from torch import Tensor

from ._utils import compute_dtype

ENV_VAR = 'SAM_MTP_CPU_POINT_OPS'
_BACKENDS = ('numba', 'torch')

# kd-tree leaf sizes and FPS bucket groups, tuned with
# benchmarks/bench_point_ops.py (20k-100k points): FPS scans its bucket list
# every step, so fewer, larger buckets than the queries' leaves, tested 8 at a
# time; three_nn searches small trees for k = 3.
FPS_LEAF_SIZE = 64
FPS_GROUP_SIZE = 8
QUERY_LEAF_SIZE = 32
THREE_NN_LEAF_SIZE = 16
# Fewer queries than this per thread are not worth a task of their own.
_MIN_QUERIES_PER_TASK = 256

_forced_torch = 0
_lock = threading.Lock()


@contextlib.contextmanager
def pure_torch_point_ops():
    """Within this block the CPU point ops run the pure-PyTorch
    implementations (the "before" of benchmarks, and tests of that path)."""
    global _forced_torch
    with _lock:
        _forced_torch += 1
    try:
        yield
    finally:
        with _lock:
            _forced_torch -= 1


@functools.lru_cache(maxsize=None)
def _load_kernels():
    try:
        from . import numba_kernels
    except ImportError as error:
        print_log(
            f'sam_mtp.ops: numba is not importable ({error}); the CPU point '
            'ops use the pure-PyTorch implementations',
            logger='current',
            level=logging.WARNING)
        return None
    return numba_kernels


def kernels():
    """The compiled-kernel module, or None when numba is not available."""
    return _load_kernels()


def backend() -> str:
    """``'numba'`` or ``'torch'``: what CPU tensors run now."""
    if _forced_torch:
        return 'torch'
    requested = os.environ.get(ENV_VAR, 'numba').strip().lower() or 'numba'
    if requested not in _BACKENDS:
        raise ValueError(f'{ENV_VAR} must be one of {_BACKENDS}, got '
                         f'{requested!r}')
    if requested == 'torch' or kernels() is None:
        return 'torch'
    return 'numba'


# Computed in float32 like mmcv's kernels (half inputs are upcast). float64
# keeps the PyTorch path: mmcv's own FPS kernel is float32-only, mmdet3d's
# points are float32, and each dtype would be a separate compilation
# (several seconds in every fresh checkout and CI run).
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def accepts(*tensors: Optional[Tensor]) -> bool:
    """Whether the kernels serve these inputs (``None`` entries ignored): all
    CPU tensors of a dtype in :data:`KERNEL_DTYPES` with finite values, and
    the numba backend active. Anything else, invalid input included, goes to
    the PyTorch path (which raises the errors)."""
    present = [t for t in tensors if t is not None]
    if not all(
            isinstance(t, Tensor) and t.device.type == 'cpu'
            and t.dtype in KERNEL_DTYPES for t in present):
        return False
    if backend() != 'numba':
        return False
    # Inf / NaN keep the PyTorch semantics (torch.minimum propagates NaN).
    return all(bool(torch.isfinite(t).all()) for t in present)


# ---------------------------------------------------------------- threads
_pool: Optional[ThreadPoolExecutor] = None
_pool_key: Tuple[int, int] = (0, 0)


def _run(tasks: Sequence[Callable[[], None]]) -> None:
    """Run the tasks on ``torch.get_num_threads()`` threads."""
    global _pool, _pool_key
    threads = torch.get_num_threads()
    if threads <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    # A forked child (data loader worker) inherits a pool without threads.
    key = (os.getpid(), threads)
    with _lock:
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == key[0]:
                _pool.shutdown(wait=False)  # the thread count changed
            _pool = ThreadPoolExecutor(
                threads, thread_name_prefix='sam_mtp_point_ops')
            _pool_key = key
        pool = _pool
    for future in [pool.submit(task) for task in tasks]:
        future.result()


def _query_ranges(num_queries: int, num_groups: int) -> List[range]:
    """Split each group's queries so that about one task per thread runs."""
    threads = torch.get_num_threads()
    parts = max(1, min(math.ceil(threads / max(num_groups, 1)),
                       num_queries // _MIN_QUERIES_PER_TASK))
    step = max(1, math.ceil(num_queries / parts))
    return [
        range(begin, min(num_queries, begin + step))
        for begin in range(0, num_queries, step)
    ]


def _as_array(tensor: Tensor, dtype: torch.dtype) -> np.ndarray:
    return tensor.detach().to(dtype).contiguous().numpy()


def _search(points: Sequence[np.ndarray],
            queries: Sequence[np.ndarray],
            search: Callable,
            leaf_size: int = QUERY_LEAF_SIZE) -> None:
    """Build one tree per group of points, then call ``search(group, tree,
    begin, stop)`` over chunks of that group's queries, all on threads."""
    numba_kernels = kernels()
    trees = [None] * len(points)

    def build(group):
        trees[group] = numba_kernels.build_tree(points[group], leaf_size,
                                                True)

    _run([
        functools.partial(build, group) for group in range(len(points))
        if len(points[group]) and len(queries[group])
    ])
    tasks = []
    for group, tree in enumerate(trees):
        if tree is None:
            continue
        for rows in _query_ranges(len(queries[group]), len(points)):
            tasks.append(
                functools.partial(search, group, tree, rows.start, rows.stop))
    _run(tasks)


# -------------------------------------------------------------------- ops
def furthest_point_sample(points_xyz: Tensor, num_points: int,
                          scan_rank: np.ndarray, initial: float) -> Tensor:
    """(B, N, 3) -> (B, num_points) int32 FPS indices (validated input).

    Args:
        scan_rank (np.ndarray): (N,) int64 tie preference, lower wins.
        initial (float): the running distances' initial value.
    """
    batch, num_in = points_xyz.shape[:2]
    output = torch.zeros(batch, num_points, dtype=torch.int32)
    if num_points == 0 or batch == 0:
        return output
    coords = _as_array(points_xyz, compute_dtype(points_xyz))
    initial = coords.dtype.type(initial)
    out = output.numpy()
    numba_kernels = kernels()

    def sample(b):
        tree = numba_kernels.build_tree(coords[b], FPS_LEAF_SIZE, False)
        numba_kernels.furthest_point_sample(coords[b], tree, num_points,
                                            scan_rank, initial,
                                            FPS_GROUP_SIZE, out[b])

    _run([functools.partial(sample, b) for b in range(batch)])
    return output


def knn(k: int, xyz: Tensor, center_xyz: Tensor, limit: float) -> Tensor:
    """(B, N, 3), (B, M, 3) -> (B, k, M) int32, nearest first, ties by index,
    only points closer than ``limit`` (other slots 0)."""
    batch, num_centres = center_xyz.shape[:2]
    dtype = compute_dtype(xyz)
    points, centres = _as_array(xyz, dtype), _as_array(center_xyz, dtype)
    output = torch.zeros(batch, num_centres, k, dtype=torch.int32)
    out = output.numpy()
    take = min(k, points.shape[1])
    nearest_k = kernels().nearest_k
    no_dist2 = np.empty((0, 0), dtype=points.dtype)

    def search(b, tree, begin, stop):
        nearest_k(tree, centres[b], begin, stop, take, limit, out[b],
                  no_dist2, False)

    _search(list(points), list(centres), search)
    return output.transpose(1, 2).contiguous()


def three_nn(target: Tensor, source: Tensor, limit: float,
             fill: float) -> Tuple[Tensor, Tensor]:
    """(B, N, 3), (B, M, 3) -> Euclidean distances in ``target``'s dtype and
    int32 indices of the 3 nearest sources, ties by index; missing slots hold
    index 0 and distance ``sqrt(fill)``."""
    batch, num_query = target.shape[:2]
    dtype = compute_dtype(target)
    queries, points = _as_array(target, dtype), _as_array(source, dtype)
    dist2 = torch.full((batch, num_query, 3), fill, dtype=dtype)
    index = torch.zeros(batch, num_query, 3, dtype=torch.int32)
    dist2_out, index_out = dist2.numpy(), index.numpy()
    take = min(3, points.shape[1])
    nearest_k = kernels().nearest_k

    def search(b, tree, begin, stop):
        nearest_k(tree, queries[b], begin, stop, take, limit, index_out[b],
                  dist2_out[b], True)

    _search(list(points), list(queries), search, THREE_NN_LEAF_SIZE)
    return torch.sqrt(dist2.to(target.dtype)), index


def ball_query(min_radius2: float, max_radius2: float, sample_num: int,
               xyz: Tensor, center_xyz: Tensor) -> Tensor:
    """Batched ball query: (B, N, 3), (B, M, 3) -> (B, M, sample_num)."""
    batch, num_centres = center_xyz.shape[:2]
    dtype = compute_dtype(xyz)
    points, centres = _as_array(xyz, dtype), _as_array(center_xyz, dtype)
    output = torch.zeros(batch, num_centres, sample_num, dtype=torch.int32)
    out = output.numpy()
    first_in_ball = kernels().first_in_ball

    def search(b, tree, begin, stop):
        first_in_ball(tree, centres[b], begin, stop, sample_num, min_radius2,
                      max_radius2, True, 0, out[b])

    _search(list(points), list(centres), search)
    return output


def stacked_ball_query(max_radius2: float, sample_num: int, xyz: Tensor,
                       center_xyz: Tensor, point_counts: Sequence[int],
                       centre_counts: Sequence[int]) -> Tensor:
    """Stacked ball query: local indices, ``d2 < max_radius2`` only, an
    empty ball (or a scene without points) is ``[-1, 0, ...]``."""
    dtype = compute_dtype(xyz)
    points_all = _as_array(xyz, dtype)
    centres_all = _as_array(center_xyz, dtype)
    output = torch.zeros(
        center_xyz.shape[0], sample_num, dtype=torch.int32)
    out_all = output.numpy()
    point_start = np.cumsum([0] + list(point_counts))
    centre_start = np.cumsum([0] + list(centre_counts))
    points = [
        points_all[point_start[b]:point_start[b + 1]]
        for b in range(len(point_counts))
    ]
    centres = [
        centres_all[centre_start[b]:centre_start[b + 1]]
        for b in range(len(centre_counts))
    ]
    outs = [
        out_all[centre_start[b]:centre_start[b + 1]]
        for b in range(len(centre_counts))
    ]
    for b in range(len(points)):
        if len(points[b]) == 0:
            outs[b][:, 0] = -1
    first_in_ball = kernels().first_in_ball

    def search(b, tree, begin, stop):
        first_in_ball(tree, centres[b], begin, stop, sample_num, 0.0,
                      max_radius2, False, -1, outs[b])

    _search(points, centres, search)
    return output
