"""Per-frame cost of offline label generation, split into mask model / feature model / geometry / pooling / IO.

Runs the real pipeline (``LabelGenerator.read / process / write``) on synthetic 640x480 RGB-D frames with
stand-in models, so the numbers isolate the non-model work that must stay vectorised (target: geometry +
pooling < 50 ms per 640x480 frame with 20k points and ~100 regions on one core)::

    python benchmarks/bench_label_generation.py                 # stand-ins, 1 thread
    python benchmarks/bench_label_generation.py --tiny-sam      # also time segment-anything's AMG path
    python benchmarks/bench_label_generation.py --json out.json

Mask stand-in: a Voronoi partition with ``--regions`` cells (SAM-like region count and boundaries; its time
is not a model's). Feature stand-in: a seeded random ViT (``--feature-dim``). The pooling cost of real
DINOv2 ViT-B features (768 x 32 x 43 grid) is timed separately, as it would run on the CPU.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # docs_tables

from docs_tables import atomic_write_text, finish_stamp, run_stamp  # noqa: E402


class VoronoiMaskSource:
    """Region map with ``regions`` Voronoi cells (seeded per frame); about SAM's count and boundary length."""

    def __init__(self, regions: int):
        self.regions = regions

    def __call__(self, image, record):
        h, w = image.shape[:2]
        rng = np.random.default_rng(record.frame_id)
        seeds = torch.from_numpy(rng.uniform([0, 0], [h, w], (self.regions, 2))).float()
        yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing='ij')
        grid = torch.stack([yy.reshape(-1), xx.reshape(-1)], 1)
        cells = torch.cdist(grid, seeds).argmin(1).reshape(h, w).numpy().astype(np.int32) + 1
        cells[:h // 10, :w // 10] = 0  # some pixels in no mask, as SAM leaves holes
        return cells


def _stats(values):
    arr = np.asarray(values) * 1000
    return dict(mean_ms=float(arr.mean()), median_ms=float(np.median(arr)), min_ms=float(arr.min()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=8)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--regions', type=int, default=100)
    parser.add_argument('--num-points', type=int, default=20000)
    parser.add_argument('--feature-dim', type=int, default=64, help='width of the random ViT stand-in')
    parser.add_argument('--tiny-sam', action='store_true', help='time a tiny random SAM through SAM-AMG')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)
    stamp = run_stamp('bench_label_generation.py', argv)
    torch.set_num_threads(args.threads)

    from projects.sam_mtp.datasets.synthetic import write_synthetic_scannet
    from projects.sam_mtp.labels import LabelGenerator, RandomViTFeatureSource, list_frames
    from projects.sam_mtp.labels.frame_labels.pooling import pool_region_features

    work = tempfile.mkdtemp(prefix='bench_labels_')
    root = os.path.join(work, 'scannet')
    tic = time.time()
    write_synthetic_scannet(root, 'train:1', seed=0, points_per_scene=2000, frames_per_scene=args.frames,
                            image_size=(640, 480))
    print(f'rendered {args.frames} synthetic 640x480 frames in {time.time() - tic:.1f} s', file=sys.stderr)
    records = list_frames(os.path.join(root, 'posed_images'))
    dim = args.feature_dim
    heads = max(1, dim // 32)
    features = RandomViTFeatureSource(arch=dict(embed_dims=dim, num_layers=2, num_heads=heads,
                                                feedforward_channels=2 * dim), short_side=224, seed=0)
    generator = LabelGenerator(VoronoiMaskSource(args.regions), features, os.path.join(work, 'labels'),
                               dict(num_points=args.num_points, mask_size=(480, 640), io_workers=0),
                               os.path.join(root, 'scans'))
    stages = {k: [] for k in ('read', 'mask', 'feature', 'geometry', 'pooling', 'write')}
    regions = []
    for i, record in enumerate(records):
        timings = {}
        tic = time.perf_counter()
        frame = generator.read(record)
        timings['read'] = time.perf_counter() - tic
        output = generator.process(frame, timings)
        tic = time.perf_counter()
        generator.write(record, output)
        timings['write'] = time.perf_counter() - tic
        if i == 0:
            continue  # warm-up (lazy imports, allocator)
        for k, v in timings.items():
            stages[k].append(v)
        regions.append(len(output.arrays['region_feat']))
    results = dict(stamp=stamp, threads=args.threads, frames=len(records) - 1, regions=args.regions,
                   regions_per_frame=float(np.mean(regions)), num_points=args.num_points, feature_dim=dim,
                   stages={k: _stats(v) for k, v in stages.items()})
    non_model = np.asarray(stages['geometry']) + np.asarray(stages['pooling'])
    results['geometry_plus_pooling'] = _stats(non_model)
    results['non_model_with_io'] = _stats(non_model + np.asarray(stages['read']) + np.asarray(stages['write']))

    # Pooling of real-size DINOv2 ViT-B features (768 x 32 x 43 for a 448 x 602 input) on the CPU.
    region_map = output.region_map
    big = torch.randn(768, 32, 43)
    pool_region_features(big, region_map)
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        pool_region_features(big, region_map)
        times.append(time.perf_counter() - tic)
    results['pooling_vit_b_768'] = _stats(times)

    if args.tiny_sam:
        from segment_anything import SamAutomaticMaskGenerator

        from projects.sam_mtp.testing import build_tiny_sam
        torch.manual_seed(0)
        sam = build_tiny_sam(image_size=256).eval()
        amg = SamAutomaticMaskGenerator(sam, points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
        image = np.ascontiguousarray(frame.color)
        times = []
        for _ in range(2):
            tic = time.perf_counter()
            with torch.no_grad():
                amg.generate(image)
            times.append(time.perf_counter() - tic)
        results['tiny_sam_amg_8x8_points'] = _stats(times[1:])

    lines = [f'per frame ({results["frames"]} frames, {results["regions_per_frame"]:.0f} regions, '
             f'{args.num_points} points, D={dim}, {args.threads} thread(s)):']
    for k, v in results['stages'].items():
        lines.append(f'  {k:<9} {v["mean_ms"]:8.1f} ms (median {v["median_ms"]:.1f})')
    lines.append(f'  geometry + pooling  {results["geometry_plus_pooling"]["mean_ms"]:.1f} ms (median '
                 f'{results["geometry_plus_pooling"]["median_ms"]:.1f}), with IO '
                 f'{results["non_model_with_io"]["mean_ms"]:.1f} ms')
    lines.append(f'  pooling of ViT-B features (768 x 32 x 43): {results["pooling_vit_b_768"]["mean_ms"]:.1f} ms')
    if 'tiny_sam_amg_8x8_points' in results:
        lines.append(f'  tiny SAM AMG (64 points): {results["tiny_sam_amg_8x8_points"]["mean_ms"]:.1f} ms')
    print('\n'.join(lines))
    if args.json:
        finish_stamp(stamp)
        atomic_write_text(args.json, json.dumps(results, indent=1))
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == '__main__':
    main()
