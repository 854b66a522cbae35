"""Time the CPU point ops against their previous pure-PyTorch version and the best CPU libraries, in one run.

For each size (points N -> centres M) of a synthetic ScanNet-like room (points on the floor, the walls and the
surfaces of furniture boxes, 8 x 8 x 3 m), every op runs with

* ours: the dispatchers' CPU path (numba kd-tree kernels, :mod:`projects.sam_mtp.ops.cpu_kernels`);
* previous: the pure-PyTorch ``*_torch`` implementations (what the CPU ran before);
* peers: ``fpsample.bucket_fps_kdline_sampling`` (QuickFPS, C++) at kd-tree heights 5, 7 and 9 for FPS, and
  ``scipy.spatial.cKDTree`` (tree build included, as our ops build theirs per call) for the queries;

interleaved repeat by repeat (ours, peers, previous), so that load on a shared machine hits all alike; medians are
reported with the ratio ours / fastest peer and the issue's targets (FPS <= 1.5x, queries <= 2x). Ours is also
checked to return exactly the previous version's result. Then a batch spread over threads, and (unless
``--no-train-steps``) one real-size training step per detector before (pure PyTorch ops) and after, and (unless
``--no-compile-time``) the cost of the first call in a fresh process: numba's compilation with an empty cache (a
fresh checkout), its cache load otherwise.

    python benchmarks/bench_point_ops.py --threads 1 --out work_dirs/benchmarks/point_ops.json
    python benchmarks/docs_tables.py work_dirs/benchmarks --only point_ops --docs docs/benchmarks.md

With CUDA present, mmcv's CUDA kernels and our PyTorch ops on CUDA are timed as well (``cuda`` rows).
"""
import argparse
import datetime
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, ROOT)  # runnable from a checkout without installing the package
sys.path.insert(0, HERE)  # point_ops_table, docs_tables

from docs_tables import commit, machine, versions  # noqa: E402
from point_ops_table import render  # noqa: E402

import projects.sam_mtp.ops as ops  # noqa: E402
from projects.sam_mtp.labels.fileio import atomic_write_bytes  # noqa: E402
from projects.sam_mtp.ops import cpu_kernels  # noqa: E402
from projects.sam_mtp.testing import det3d_sample, room_scene  # noqa: E402  (the synthetic rooms)

FPS_HEIGHTS = (5, 7, 9)
# The acceptance: ours / fastest peer, single thread.
TARGETS = {'furthest_point_sample': 1.5, 'knn': 2.0, 'ball_query': 2.0, 'ball_query_stacked': 2.0, 'three_nn': 2.0}
# Detectors of the training-step comparison: config, points per scene, input columns.
TRAIN_MODELS = {
    '3detr-knn': ('configs/sam_mtp/ablations/threedetr_plain-transformer-sam-mtp-knn-tokens_1xb8-1080e_scannet-3d.py',
                  40000, 'xyz'),
    '3detr-sam': ('configs/sam_mtp/benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py',
                  40000, 'xyz+segment'),
    'groupfree3d-pointnet2': ('mmdet3d::groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py', 50000, 'xyz'),
    'groupfree3d-sam': ('configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py',
                        50000, 'xyz+segment'),
}
NUM_CLASSES = 18  # ScanNet detection


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', default=['20000:1024', '40000:2048', '100000:4096'],
                        help='points:centres pairs')
    parser.add_argument('--radius', type=float, default=0.2)
    parser.add_argument('--nsample', type=int, default=32, help='ball query slots')
    parser.add_argument('--knn-k', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=5, help='timed calls of ours and the peers (after 1 warm-up)')
    parser.add_argument('--previous-repeats', type=int, default=3, help='timed calls of the previous version')
    parser.add_argument('--previous-budget-s', type=float, default=20.0,
                        help='stop repeating a previous-version call once its timings exceed this')
    parser.add_argument('--threads', type=int, default=1, help='torch.set_num_threads for the comparison')
    parser.add_argument('--batch-threads', type=int, default=os.cpu_count() or 1,
                        help='threads of the batch-spreading run (skipped when 1)')
    parser.add_argument('--batch-size', default='40000:2048', help='points:centres of the batch-spreading run')
    parser.add_argument('--train-models', nargs='*', default=['3detr-knn', 'groupfree3d-pointnet2'],
                        choices=sorted(TRAIN_MODELS), help='detectors of the training-step comparison')
    parser.add_argument('--no-train-steps', action='store_true')
    parser.add_argument('--no-compile-time', action='store_true',
                        help='skip the first-call (numba compilation / cache load) probe in fresh processes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None, help='write the results as JSON here')
    return parser.parse_args(argv)


# ----------------------------------------------------------------- timing
def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) * 1e3


def _no_sync():
    pass


def _fps_radius(points: np.ndarray, index: np.ndarray) -> float:
    """Coverage radius of a sample: the largest distance of a point to its nearest sample."""
    from scipy.spatial import cKDTree
    return float(cKDTree(points[index]).query(points, k=1)[0].max())


def _peers(points_np, centres_np, args) -> Dict[str, Dict[str, Callable[[], object]]]:
    """op -> peer name -> call; empty where the peer library is missing."""
    peers = {name: {} for name in TARGETS}
    try:
        import fpsample
    except ImportError:
        print('fpsample is not installed: no FPS peer (pip install -r requirements/tests.txt)')
    else:
        for h in FPS_HEIGHTS:
            peers['furthest_point_sample'][f'fpsample kdline h={h}'] = (
                lambda h=h: fpsample.bucket_fps_kdline_sampling(points_np, len(centres_np), h=h, start_idx=0))
    try:
        from scipy.spatial import cKDTree
    except ImportError:
        print('scipy is not installed: no kd-tree peer')
        return peers
    r, k = args.radius, args.nsample
    peers['knn']['scipy cKDTree query'] = lambda: cKDTree(points_np).query(centres_np, k=args.knn_k)
    for op in ('ball_query', 'ball_query_stacked'):
        peers[op]['scipy cKDTree query(k, distance_upper_bound=r)'] = (
            lambda: cKDTree(points_np).query(centres_np, k=k, distance_upper_bound=r))
        peers[op]['scipy cKDTree query_ball_point'] = lambda: cKDTree(points_np).query_ball_point(centres_np, r)
    peers['three_nn']['scipy cKDTree query'] = lambda: cKDTree(centres_np).query(points_np, k=3)
    return peers


def _calls(impl: Dict[str, Callable], points: torch.Tensor, centres: torch.Tensor, args) -> Dict[str, Callable]:
    """op -> call of one implementation family (ours / previous) on the same inputs."""
    num_centres = centres.shape[1]
    counts = (torch.tensor([points.shape[1]], dtype=torch.int32), torch.tensor([num_centres], dtype=torch.int32))
    return {
        'furthest_point_sample': lambda: impl['furthest_point_sample'](points, num_centres),
        'knn': lambda: impl['knn'](args.knn_k, points, centres),
        'ball_query': lambda: impl['ball_query'](0.0, args.radius, args.nsample, points, centres),
        'ball_query_stacked': lambda: impl['ball_query'](0.0, args.radius, args.nsample, points[0], centres[0],
                                                         *counts),
        'three_nn': lambda: impl['three_nn'](points, centres),
    }


OURS = dict(furthest_point_sample=ops.furthest_point_sample, knn=ops.knn, ball_query=ops.ball_query,
            three_nn=ops.three_nn)
PREVIOUS = dict(furthest_point_sample=ops.furthest_point_sample_torch, knn=ops.knn_torch,
                ball_query=ops.ball_query_torch, three_nn=ops.three_nn_torch)


def _same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return bool(torch.equal(a, b))


def compare_size(num_points: int, num_centres: int, args) -> List[dict]:
    """One size: every op with ours, the peers and the previous version, interleaved."""
    scene = room_scene(num_points, args.seed)
    points = torch.from_numpy(scene['xyz'])[None].contiguous()
    centre_index = ops.furthest_point_sample(points, num_centres)[0].long()
    centres = points[:, centre_index].contiguous()
    points_np, centres_np = scene['xyz'], centres[0].numpy()
    peers = _peers(points_np, centres_np, args)
    ours, previous = _calls(OURS, points, centres, args), _calls(PREVIOUS, points, centres, args)
    rows = []
    for op in TARGETS:
        print(f'  {op} ...', flush=True)
        result = ours[op]()  # warm-up (numba cache load) and the exactness check
        peer_fns = peers[op]
        for fn in peer_fns.values():
            fn()
        times = {'ours': [], 'previous': [], **{name: [] for name in peer_fns}}
        identical = None
        for rep in range(max(args.repeats, args.previous_repeats)):
            if rep < args.repeats:
                times['ours'].append(_timed(ours[op], _no_sync))
                for name, fn in peer_fns.items():
                    times[name].append(_timed(fn, _no_sync))
            if rep < args.previous_repeats and sum(times['previous']) < args.previous_budget_s * 1e3:
                start = time.perf_counter()
                previous_result = previous[op]()
                times['previous'].append((time.perf_counter() - start) * 1e3)
                if identical is None:
                    identical = _same(result, previous_result)
        medians = {name: statistics.median(t) for name, t in times.items() if t}
        peer_medians = {name: medians[name] for name in peer_fns}
        best_peer = min(peer_medians, key=peer_medians.get) if peer_medians else None
        row = dict(op=op, points=num_points, centres=num_centres, times_ms=times, median_ms=medians,
                   identical_to_previous=identical, best_peer=best_peer, target=TARGETS[op])
        if best_peer:
            row['ours_over_best_peer'] = medians['ours'] / medians[best_peer]
            row['met'] = row['ours_over_best_peer'] <= TARGETS[op]
        row['previous_over_ours'] = medians['previous'] / medians['ours'] if 'previous' in medians else None
        if op == 'furthest_point_sample':
            row['coverage_radius_m'] = {'ours': _fps_radius(points_np, result[0].numpy().astype(np.int64))}
            for name, fn in peer_fns.items():
                row['coverage_radius_m'][name] = _fps_radius(points_np, np.asarray(fn(), dtype=np.int64))
        rows.append(row)
        print(f'    ours {medians["ours"]:.1f} ms, previous {medians.get("previous", float("nan")):.1f} ms'
              + (f', {best_peer} {medians[best_peer]:.1f} ms -> {row["ours_over_best_peer"]:.2f}x'
                 if best_peer else '') + f', identical to previous: {identical}', flush=True)
    return rows


def compare_threads(args) -> Optional[dict]:
    """Ours on a batch of 2 x threads scenes with 1 thread and with ``--batch-threads`` threads."""
    threads = args.batch_threads
    if threads <= 1:
        return None
    num_points, num_centres = (int(v) for v in args.batch_size.split(':'))
    batch = 2 * threads
    points = torch.from_numpy(np.stack([room_scene(num_points, args.seed + b)['xyz'] for b in range(batch)]))
    index = ops.furthest_point_sample(points, num_centres).long()
    centres = torch.gather(points, 1, index[..., None].expand(-1, -1, 3)).contiguous()
    calls = _calls(OURS, points, centres, args)
    calls.pop('ball_query_stacked')
    result = dict(points=num_points, centres=num_centres, batch=batch, threads=threads, ops={})
    saved = torch.get_num_threads()
    try:
        for op, fn in calls.items():
            fn()
            medians = {}
            for num_threads in (1, threads):
                torch.set_num_threads(num_threads)
                medians[num_threads] = statistics.median(_timed(fn, _no_sync) for _ in range(args.repeats))
            result['ops'][op] = dict(one_thread_ms=medians[1], threads_ms=medians[threads],
                                     speedup=medians[1] / medians[threads])
    finally:
        torch.set_num_threads(saved)
    return result


def compare_cuda(num_points, num_centres, args) -> List[dict]:
    """mmcv's CUDA kernels and our PyTorch ops on CUDA (only with a GPU)."""
    if not torch.cuda.is_available():
        return []
    points = torch.from_numpy(room_scene(num_points, args.seed)['xyz'])[None].cuda()
    centres = points[:, ops.furthest_point_sample(points, num_centres)[0].long()].contiguous()
    rows = []
    families = {'torch (ours) on CUDA': PREVIOUS}
    mmcv = {name: ops.original_op(name) for name in OURS}
    if all(mmcv.values()):
        families['mmcv CUDA'] = mmcv
    for label, impl in families.items():
        for op, fn in _calls(impl, points, centres, args).items():
            fn()
            times = [_timed(fn, torch.cuda.synchronize) for _ in range(args.repeats)]
            rows.append(dict(op=op, backend=label, device='cuda', points=num_points, centres=num_centres,
                             median_ms=statistics.median(times), times_ms=times))
    return rows


# ------------------------------------------------------------ compilation
_FIRST_CALLS = r"""
import json, time, torch
import projects.sam_mtp.ops as ops
p = torch.rand(1, 500, 3)
c = p[:, :20].contiguous()
n = torch.tensor([500], dtype=torch.int32), torch.tensor([20], dtype=torch.int32)
calls = dict(furthest_point_sample=lambda: ops.furthest_point_sample(p, 20), knn=lambda: ops.knn(4, p, c),
             ball_query=lambda: ops.ball_query(0., .2, 4, p, c), three_nn=lambda: ops.three_nn(p, c),
             ball_query_stacked=lambda: ops.ball_query(0., .2, 4, p[0], c[0], *n))
out = {}
for name, fn in calls.items():
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    out[name] = dict(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu)
print(json.dumps(out))
"""


def measure_compile() -> dict:
    """First call of each op in a fresh process with an empty numba cache (a fresh checkout: compilation), then
    in another one with that cache filled (every later process: loading)."""
    import tempfile
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT)
        env.pop(cpu_kernels.ENV_VAR, None)
        runs = {}
        for name in ('cold', 'warm'):
            out = subprocess.run([sys.executable, '-c', _FIRST_CALLS], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f'compile-time probe failed:\n{out.stderr[-3000:]}')
            runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    return {name: dict(ops=calls, total_wall_s=sum(c['wall_s'] for c in calls.values()),
                       total_cpu_s=sum(c['cpu_s'] for c in calls.values())) for name, calls in runs.items()}


# ---------------------------------------------------------- training steps
def _detection_batch(model_name: str, seed: int):
    config, num_points, columns = TRAIN_MODELS[model_name]
    scene = room_scene(num_points, seed, num_classes=NUM_CLASSES)
    points = torch.from_numpy(scene['xyz'])
    if columns == 'xyz+segment':
        points = torch.cat([points, torch.from_numpy(scene['segment']).float()[:, None]], 1)
    sample = det3d_sample(torch.from_numpy(scene['boxes']), torch.from_numpy(scene['labels']),
                          instance_mask=torch.from_numpy(scene['instance']),
                          semantic_mask=torch.from_numpy(scene['semantic']), sample_idx=seed)
    return dict(inputs=dict(points=[points]), data_samples=[sample])


def _build_detector(model_name: str):
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import projects.sam_mtp  # noqa: F401
    register_all_modules(init_default_scope=False)
    init_default_scope('mmdet3d')
    config = TRAIN_MODELS[model_name][0]
    if config.startswith('mmdet3d::'):
        import mmdet3d
        config = osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'configs', config[len('mmdet3d::'):])
    else:
        config = osp.join(ROOT, config)
    cfg = Config.fromfile(config)
    if cfg.model.backbone.get('init_cfg'):
        cfg.model.backbone.init_cfg = None  # random weights: the step costs the same
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def _train_step(model, optim_wrapper, data) -> float:
    start = time.perf_counter()
    batch = model.data_preprocessor(data, training=True)
    losses = model(**batch, mode='loss')
    loss, _ = model.parse_losses(losses)
    optim_wrapper.update_params(loss)
    return time.perf_counter() - start


def compare_train_steps(args) -> List[dict]:
    """One training step (batch 1) per detector with our point ops and with the pure-PyTorch ones."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('bench_point_ops', log_level='WARNING')  # the optimizer builder's per-parameter lines
    rows = []
    for name in args.train_models:
        print(f'  training step {name} ...', flush=True)
        model, optim_wrapper = _build_detector(name)
        data = _detection_batch(name, args.seed)
        warm_up = _train_step(model, optim_wrapper, data)  # allocator, numba cache load
        after = _train_step(model, optim_wrapper, data)
        with ops.pure_torch_point_ops():
            before = _train_step(model, optim_wrapper, data)
        rows.append(dict(model=name, config=TRAIN_MODELS[name][0], points=TRAIN_MODELS[name][1], batch=1,
                         before_s=before, after_s=after, warm_up_s=warm_up, speedup=before / after))
        print(f'    before {before:.2f} s, after {after:.2f} s', flush=True)
        del model, optim_wrapper
    return rows


# ----------------------------------------------------------------- output
def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if cpu_kernels.backend() != 'numba':
        sys.exit(f'our CPU kernels are not active (backend {cpu_kernels.backend()!r}): install numba and unset '
                 f'{cpu_kernels.ENV_VAR}')
    meta = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                machine=machine(), commit=commit(), versions=versions('torch', 'numpy', 'numba', 'scipy', 'fpsample'),
                 threads=args.threads,
                command='python benchmarks/bench_point_ops.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
                load_average_start=os.getloadavg(), args=vars(args))
    results = dict(meta=meta, ops=[], cuda=[], threads=None, train_steps=[], compile=None)
    if not args.no_compile_time:
        print('first calls in fresh processes (numba compilation, then cache load)', flush=True)
        results['compile'] = measure_compile()
    for size in args.sizes:
        num_points, num_centres = (int(v) for v in size.split(':'))
        print(f'{num_points} points -> {num_centres} centres, {args.threads} thread(s)', flush=True)
        results['ops'] += compare_size(num_points, num_centres, args)
        results['cuda'] += compare_cuda(num_points, num_centres, args)
    print(f'batch spread over {args.batch_threads} threads', flush=True)
    results['threads'] = compare_threads(args)
    if not args.no_train_steps and args.train_models:
        torch.set_num_threads(args.threads)
        results['train_steps'] = compare_train_steps(args)
    meta['load_average_end'] = os.getloadavg()
    print('\n' + render(results))
    if args.out:
        atomic_write_bytes(args.out, json.dumps(results, indent=1).encode())
        print(f'wrote {args.out}')
    return results


if __name__ == '__main__':
    main()
