"""Time the pure-PyTorch point ops on the CPU (and mmcv's kernels on CUDA).

Workload (one scene): 20k points, FPS to 1024 centres, ball query r=0.2 k=32
around the centres, three_nn from the 1024 centres back to the 20k points
(the PointNet++ FP direction: every point looks up its 3 nearest centres),
and kNN k=32 of the centres among the points.

Example::

    python benchmarks/bench_point_ops.py --threads 1 --out bench.json
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

import torch

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from projects.sam_mtp.ops import (ball_query, furthest_point_sample,  # noqa: E402,E501
                                  knn, original_op, three_nn)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--points', type=int, default=20000)
    parser.add_argument('--centres', type=int, default=1024)
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--radius', type=float, default=0.2)
    parser.add_argument('--nsample', type=int, default=32)
    parser.add_argument('--knn-k', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument(
        '--threads', type=int, default=1, help='torch.set_num_threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--out', default=None, help='write the results as JSON here')
    return parser.parse_args()


def _time(fn: Callable[[], object], repeats: int, device: str) -> List[float]:

    def sync():
        if device == 'cuda':
            torch.cuda.synchronize()

    fn()  # warm-up (caches, CUDA context, allocator)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def _workload(args, device: str, ops: Dict[str, Callable]):
    generator = torch.Generator().manual_seed(args.seed)
    # A room-sized scene (about 8 x 8 x 3 m) like a ScanNet scan.
    scale = torch.tensor([8.0, 8.0, 3.0])
    points = (torch.rand(args.batch, args.points, 3, generator=generator) *
              scale).to(device).contiguous()
    index = ops['furthest_point_sample'](points, args.centres).long()
    centres = torch.gather(points, 1, index[..., None].expand(-1, -1,
                                                              3)).contiguous()
    return {
        'furthest_point_sample':
        lambda: ops['furthest_point_sample'](points, args.centres),
        'ball_query':
        lambda: ops['ball_query']
        (0.0, args.radius, args.nsample, points, centres),
        'three_nn':
        lambda: ops['three_nn'](points, centres),
        'knn':
        lambda: ops['knn'](args.knn_k, points, centres, False),
    }


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    cpu_ops = dict(
        furthest_point_sample=furthest_point_sample,
        ball_query=ball_query,
        three_nn=three_nn,
        knn=knn)
    backends = [('cpu', 'torch (ours)', cpu_ops)]
    if torch.cuda.is_available():
        mmcv_ops = {name: original_op(name) for name in cpu_ops}
        if all(op is not None for op in mmcv_ops.values()):
            backends.append(('cuda', 'mmcv CUDA', mmcv_ops))
        backends.append(('cuda', 'torch (ours) on CUDA', {
            name:
            getattr(sys.modules['projects.sam_mtp.ops'], name + '_torch')
            for name in cpu_ops
        }))
    else:
        print('CUDA not available: mmcv CUDA timings skipped')
    for device, label, ops in backends:
        for name, fn in _workload(args, device, ops).items():
            times = _time(fn, args.repeats, device)
            rows.append(
                dict(
                    op=name,
                    backend=label,
                    device=device,
                    median_ms=1e3 * statistics.median(times),
                    min_ms=1e3 * min(times),
                    repeats=args.repeats))
    header = (f'points={args.points} centres={args.centres} '
              f'batch={args.batch} threads={args.threads}')
    print(f'\n{header}\n')
    print('| op | backend | median ms | min ms |')
    print('|---|---|---:|---:|')
    for row in rows:
        print(f"| {row['op']} | {row['backend']} | {row['median_ms']:.1f} | "
              f"{row['min_ms']:.1f} |")
    if args.out:
        result = dict(
            config=vars(args),
            torch=torch.__version__,
            cpu=platform.processor() or platform.machine(),
            cuda_device=(torch.cuda.get_device_name(0)
                         if torch.cuda.is_available() else None),
            results=rows)
        out_dir = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        # Atomic write: a partial file never replaces a previous result.
        with tempfile.NamedTemporaryFile(
                'w', dir=out_dir, delete=False, suffix='.tmp') as handle:
            json.dump(result, handle, indent=2)
        os.replace(handle.name, args.out)


if __name__ == '__main__':
    main()
