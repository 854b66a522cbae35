"""Time SAM-guided tokenization against FPS + kNN tokenization on CPU (or CUDA), in one run.

The issue's acceptance: SAM-guided tokenization of a 20k-point frame is >= 10x faster than FPS(256) + kNN(128).
Frames are synthetic: ``--regions`` spatially coherent regions (Voronoi cells around random seeds, like SAM
masks back-projected from one view) with ``--unassigned`` of the points in no region (id 0).

    python benchmarks/bench_tokenizers.py [--points 20000 40000] [--batch 1] [--repeats 7] [--threads 1]
        [--device cpu] [--out results.json]
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # docs_tables

from docs_tables import atomic_write_text, finish_stamp, run_stamp  # noqa: E402

from projects.sam_mtp.models.tokenizers import FPSKNNTokenizer, SAMGuidedTokenizer  # noqa: E402
from projects.sam_mtp.models.tokenizers.fps_knn_tokenizer import knn_indices  # noqa: E402
from projects.sam_mtp.ops import furthest_point_sample  # noqa: E402
from projects.sam_mtp.testing import region_points  # noqa: E402


def time_call(fn, repeats, device):
    """Median wall time in ms over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--points', type=int, nargs='+', default=[20000, 40000])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--regions', type=int, default=80, help='SAM regions per frame')
    parser.add_argument('--unassigned', type=float, default=0.1, help='fraction of points in no region')
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    stamp = run_stamp('bench_tokenizers.py', argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    sam = SAMGuidedTokenizer().eval()  # defaults: S=128, min 16 points, no token cap, <= 32 fallback
    knn_tok = FPSKNNTokenizer(num_tokens=256, num_points_per_token=128).eval()
    rows = []
    with torch.no_grad():
        for num_points in args.points:
            # a 4 x 3 m surface patch (0.5 m deep)
            points, region = region_points(args.batch, num_points, args.regions, (4., 3., 0.5), args.unassigned,
                                           torch.Generator().manual_seed(0))
            points, region = points.to(device), region.to(device)

            def fps_knn_ops():
                centre_idx = furthest_point_sample(points, 256).long()
                centers = points[torch.arange(args.batch, device=device)[:, None], centre_idx]
                return knn_indices(points, centers, 128)

            tokens = sam(points, region)
            row = dict(
                points=num_points,
                batch=args.batch,
                sam_tokens=int(tokens.num_tokens.max()),
                sam_guided_ms=time_call(lambda: sam(points, region), args.repeats, device),
                fps_knn_tokenizer_ms=time_call(lambda: knn_tok(points, region), args.repeats, device),
                fps_knn_ops_ms=time_call(fps_knn_ops, args.repeats, device))
            row['speedup_vs_tokenizer'] = row['fps_knn_tokenizer_ms'] / row['sam_guided_ms']
            row['speedup_vs_ops'] = row['fps_knn_ops_ms'] / row['sam_guided_ms']
            rows.append(row)

    header = (f'{"points":>7} {"SAM tokens":>10} {"SAM-guided ms":>14} {"FPS+kNN tok. ms":>16} '
              f'{"FPS+kNN ops ms":>15} {"x vs tok.":>9} {"x vs ops":>9}')
    lines = [f'device={device} threads={args.threads} batch={args.batch} regions={args.regions} '
             f'unassigned={args.unassigned}', header]
    for r in rows:
        lines.append(f'{r["points"]:>7} {r["sam_tokens"]:>10} {r["sam_guided_ms"]:>14.2f} '
                     f'{r["fps_knn_tokenizer_ms"]:>16.2f} {r["fps_knn_ops_ms"]:>15.2f} '
                     f'{r["speedup_vs_tokenizer"]:>9.1f} {r["speedup_vs_ops"]:>9.1f}')
    at_20k = [r for r in rows if r['points'] == 20000]
    acceptance = None
    if at_20k:
        acceptance = bool(min(at_20k[0]['speedup_vs_tokenizer'], at_20k[0]['speedup_vs_ops']) >= 10)
        lines.append(f'acceptance (>= 10x faster at 20k points vs FPS(256)+kNN(128)): '
                     f'{"PASS" if acceptance else "FAIL"}')
    sys.stdout.write('\n'.join(lines) + '\n')
    if args.out:
        result = dict(stamp=finish_stamp(stamp), device=str(device), threads=args.threads, regions=args.regions,
                      unassigned=args.unassigned, repeats=args.repeats, rows=rows, acceptance_10x_at_20k=acceptance)
        atomic_write_text(args.out, json.dumps(result, indent=2))
    return 0 if acceptance in (None, True) else 1


if __name__ == '__main__':
    sys.exit(main())
