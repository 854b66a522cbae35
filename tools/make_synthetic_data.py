"""Write a small, seeded synthetic ScanNet root (mmdet3d layout + posed RGB-D frames) for demos and tests.

    python tools/make_synthetic_data.py                                  # data/demo/scannet, train:6,val:2
    python tools/make_synthetic_data.py --out data/demo/scannet --splits train:6,val:2 --seed 0 \
        --points-per-scene 20000 --frames-per-scene 10 --image-size 320x240 [--depth-size 160x120] \
        [--invalid-poses 1]

The same arguments give byte-identical files. See docs/synthetic_data.md for the layout.
"""
import argparse
import os.path as osp
import sys
import time

# Make the repository importable when this file is run as a script from anywhere.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.logging import print_log  # noqa: E402

from projects.sam_mtp.datasets.synthetic import parse_splits, write_synthetic_scannet  # noqa: E402


def _size(text):
    """'320x240' -> (320, 240) as (width, height)."""
    parts = text.lower().split('x')
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT such as 320x240, got {text!r}')
    return int(parts[0]), int(parts[1])


def _splits(text):
    try:
        return parse_splits(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def resolve_splits(splits, num_scenes):
    """Combine --splits and --num-scenes: either alone decides; given together they must agree."""
    if splits is None:
        if num_scenes is None:
            return [('train', 6), ('val', 2)]
        if num_scenes < 1:
            raise ValueError(f'--num-scenes must be >= 1, got {num_scenes}')
        num_val = num_scenes // 4 if num_scenes >= 4 else (1 if num_scenes >= 2 else 0)
        return [('train', num_scenes - num_val)] + ([('val', num_val)] if num_val else [])
    if num_scenes is not None and num_scenes != sum(c for _, c in splits):
        raise ValueError(f'--num-scenes {num_scenes} disagrees with --splits '
                         f'{",".join(f"{n}:{c}" for n, c in splits)} ({sum(c for _, c in splits)} scenes)')
    return splits


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Generate a synthetic ScanNet-format dataset')
    parser.add_argument('--out', default=osp.join('data', 'demo', 'scannet'),
                        help='output data root (replaced only if it was written by this tool)')
    parser.add_argument('--num-scenes', type=int, default=None,
                        help='total scenes; without --splits, 3/4 train and 1/4 val (default 8)')
    parser.add_argument('--splits', type=_splits, default=None,
                        help='scenes per split, e.g. train:6,val:2 (a split named test gets no annotations)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (>= 0)')
    parser.add_argument('--points-per-scene', type=int, default=20000, help='points of each scene point cloud')
    parser.add_argument('--frames-per-scene', type=int, default=10, help='posed RGB-D frames per scene (0: none)')
    parser.add_argument('--frame-stride', type=int, default=25, help='spacing of frame ids (0.jpg, 25.jpg, ...)')
    parser.add_argument('--image-size', type=_size, default=(320, 240), help='colour frame size WIDTHxHEIGHT')
    parser.add_argument('--depth-size', type=_size, default=None,
                        help='depth frame size WIDTHxHEIGHT (default: the colour size)')
    parser.add_argument('--invalid-poses', type=int, default=0,
                        help='frames per scene whose pose is all -inf, as ScanNet has for lost tracking')
    parser.add_argument('--depth-noise', type=float, default=0.0015,
                        help='depth noise std in metres at 1 m (grows with depth squared)')
    parser.add_argument('--depth-dropout', type=float, default=0.005,
                        help='fraction of depth pixels randomly set invalid (0)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        splits = resolve_splits(args.splits, args.num_scenes)
    except ValueError as err:
        raise SystemExit(f'make_synthetic_data.py: error: {err}')
    start = time.perf_counter()
    manifest = write_synthetic_scannet(
        args.out, splits=splits, seed=args.seed, points_per_scene=args.points_per_scene,
        frames_per_scene=args.frames_per_scene, image_size=args.image_size, depth_size=args.depth_size,
        frame_stride=args.frame_stride, invalid_poses_per_scene=args.invalid_poses,
        depth_noise=args.depth_noise, depth_dropout=args.depth_dropout)
    num = sum(len(v) for v in manifest['splits'].values())
    print_log(f'wrote {num} synthetic scenes to {args.out} in {time.perf_counter() - start:.1f} s', logger='current')
    return manifest


if __name__ == '__main__':
    main()
