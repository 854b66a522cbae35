"""Time tools/make_scene_segments.py per sample (its non-model part) and measure the SUN RGB-D projection error.

Synthetic samples of the real formats (``datasets/synthetic*.py``) at realistic sizes; the mask source is the
instance-image stand-in, whose time is reported apart ("model") and excluded from the non-model time, the cost
of the tool itself (reading, projection / multi-view merge / registration / graph segmentation, writing):

* ScanNet multi-view merge: ``--scannet-points`` scene points, ``--scannet-frames`` 320x240 posed frames.
* SUN RGB-D single image: 730x530 image, 50,000 points (mmdet3d's converter samples 50,000).
* S3DIS with Stanford 2D-3D-S frames: ``--s3dis-points`` room points, ``--s3dis-frames`` 270x270 frames.
* Geometric over-segmentation (NOT SAM): a room of ``--geometric-points`` points.

Projection error: every point of a rendered SUN RGB-D sample projected with its info's depth2img, against the
pixel it was back-projected from (max over points, in pixels), for both stored forms; and mmdet3d's real demo
sample (tests/data/mmdet3d/sunrgbd_demo): distance of each projection to the nearest pixel centre.

    python benchmarks/bench_scene_segments.py [--repeats 3] [--out work_dirs/benchmarks/scene_segments.json]
"""
import argparse
import json
import os.path as osp
import pickle
import shutil
import statistics
import sys
import tempfile

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # docs_tables

from docs_tables import atomic_write_text, finish_stamp, run_stamp, stamp_line  # noqa: E402

STAND_IN = dict(type='InstanceImageMaskSource', folder='instance')


def _median_timings(reports):
    """Median over repeats of the per-sample mean seconds (total, model, non-model) of tool reports."""
    keys = ('seconds', 'model_seconds', 'non_model_seconds')
    return {k: statistics.median(r['mean_seconds'][k] for r in reports) for k in keys}


def _repeat(run, repeats, root):
    """Each repeat segments every sample anew: the files of the previous repeat are removed first (``overwrite``
    keeps files made with the same settings, so it would time nothing)."""
    reports = []
    for _ in range(repeats):
        shutil.rmtree(osp.join(root, 'scene_segments'), ignore_errors=True)
        reports.append(run(overwrite=False))
    return reports


def bench_scannet(tmp, args):
    from projects.sam_mtp.datasets.synthetic import write_synthetic_scannet
    from projects.sam_mtp.labels import make_scannet_segments
    root = osp.join(tmp, 'scannet')
    write_synthetic_scannet(root, 'train:1', seed=0, points_per_scene=args.scannet_points,
                            frames_per_scene=args.scannet_frames, frame_stride=25)
    info = [osp.join(root, 'scannet_infos_train.pkl')]
    reports = _repeat(lambda overwrite: make_scannet_segments(
        root, info, osp.join(root, 'posed_images'), mask_source=STAND_IN, segment_cfg=dict(mask_size=(240, 320)),
        progress=False, overwrite=overwrite), args.repeats, root)
    return dict(points=args.scannet_points, frames=args.scannet_frames, frame_size='320x240',
                **_median_timings(reports))


def bench_sunrgbd(tmp, args):
    from projects.sam_mtp.datasets.synthetic import write_synthetic_sunrgbd
    from projects.sam_mtp.labels import make_sunrgbd_segments
    root = osp.join(tmp, 'sunrgbd')
    write_synthetic_sunrgbd(root, dict(train=args.sunrgbd_samples), seed=0, num_points=50000, image_size=(730, 530))
    info = [osp.join(root, 'sunrgbd_infos_train.pkl')]
    reports = _repeat(lambda overwrite: make_sunrgbd_segments(root, info, STAND_IN, progress=False,
                                                              overwrite=overwrite), args.repeats, root)
    return dict(points=50000, image_size='730x530', samples=args.sunrgbd_samples, **_median_timings(reports))


def bench_s3dis_2d3ds(tmp, args):
    from projects.sam_mtp.datasets.synthetic import write_synthetic_s3dis
    from projects.sam_mtp.labels import make_s3dis_segments
    root = osp.join(tmp, 's3dis')
    write_synthetic_s3dis(root, {1: 1}, seed=0, num_points=args.s3dis_points, frames_per_room=args.s3dis_frames,
                          image_size=270, extra_yaw_deg=2.0)
    info = [osp.join(root, 's3dis_infos_Area_1.pkl')]
    reports = _repeat(lambda overwrite: make_s3dis_segments(
        root, info, osp.join(root, '2d3ds'), STAND_IN, dict(mask_size=(270, 270)), progress=False,
        overwrite=overwrite), args.repeats, root)
    with open(osp.join(root, 'scene_segments', 'Area_1_office_1.json')) as f:
        fitness = json.load(f)['registration']['fitness']
    return dict(points=args.s3dis_points, frames=args.s3dis_frames, frame_size='270x270',
                registration_fitness=fitness, **_median_timings(reports))


def bench_geometric(tmp, args):
    from projects.sam_mtp.datasets.synthetic import write_synthetic_s3dis
    from projects.sam_mtp.labels import make_geometric_segments
    root = osp.join(tmp, 's3dis_geo')
    write_synthetic_s3dis(root, {2: 1}, seed=0, num_points=args.geometric_points)
    info = [osp.join(root, 's3dis_infos_Area_2.pkl')]
    make_geometric_segments(root, info, progress=False)  # compiles (or loads) the numba loop once
    reports = _repeat(lambda overwrite: make_geometric_segments(root, info, progress=False, overwrite=overwrite),
                      args.repeats, root)
    return dict(points=args.geometric_points, **_median_timings(reports))


def projection_errors():
    from projects.sam_mtp.datasets.synthetic import render_sunrgbd_sample
    from projects.sam_mtp.labels.segments.projection import project_to_image, sunrgbd_projection
    out = {}
    for form in ('K@R', 'K.T@R'):
        sample = render_sunrgbd_sample(0, 7, 50000, (730, 530), calib_form=form)
        projection, _ = sunrgbd_projection(sample['depth2img'], 'bench')
        u, v, row, col, inside = project_to_image(sample['points'], projection, sample['image_hw'], 1)
        out[f'synthetic_{form}_max_px'] = float(np.abs(np.stack([v, u], 1) - sample['pixel']).max())
        out[f'synthetic_{form}_colour_max_abs'] = float(np.abs(sample['image'][row, col] / 255.0
                                                               - sample['points'][:, 3:]).max())
    demo = osp.join(ROOT, 'tests', 'data', 'mmdet3d', 'sunrgbd_demo')
    with open(osp.join(demo, 'sunrgbd_infos.pkl'), 'rb') as f:
        cam = pickle.load(f)['data_list'][0]['images']['CAM0']
    points = np.fromfile(osp.join(demo, 'points', '000017.bin'), np.float32).reshape(-1, 6)
    projection, _ = sunrgbd_projection(cam['depth2img'], '000017')
    u, v, *_ = project_to_image(points, projection, (cam['height'], cam['width']), 1)
    out['mmdet3d_demo_000017_max_px_to_pixel_centre'] = float(max(np.abs(u - np.rint(u)).max(),
                                                                   np.abs(v - np.rint(v)).max()))
    return out


def format_table(result: dict) -> str:
    lines = [stamp_line(result['stamp'], f'; medians over {result["repeats"]} repeats of the mean per sample'), '',
             '| source | sample | non-model s / sample | stand-in mask s | total s |', '|---|---|---:|---:|---:|']
    names = dict(scannet='ScanNet multi-view merge', sunrgbd='SUN RGB-D single image',
                 s3dis_2d3ds='S3DIS + 2D-3D-S (registration + merge)', geometric='geometric (NOT SAM)')
    for key, title in names.items():
        r = result['sources'][key]
        sample = f'{r["points"]:,} points' + (f', {r["frames"]} frames {r["frame_size"]}' if 'frames' in r else '')
        sample += f', {r["image_size"]} image' if 'image_size' in r else ''
        lines.append(f'| {title} | {sample} | {r["non_model_seconds"]:.3f} | {r["model_seconds"]:.3f} | '
                     f'{r["seconds"]:.3f} |')
    p = result['projection']
    lines += ['', f'SUN RGB-D projection, max distance to the source pixel: {p["synthetic_K@R_max_px"]:.2e} px (K @ R '
              f'form), {p["synthetic_K.T@R_max_px"]:.2e} px (K.T @ R form, factorised); mmdet3d\'s real sample 000017: '
              f'every point within {p["mmdet3d_demo_000017_max_px_to_pixel_centre"]:.4f} px of a pixel centre.']
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--scannet-points', type=int, default=50000)
    parser.add_argument('--scannet-frames', type=int, default=40)
    parser.add_argument('--sunrgbd-samples', type=int, default=3)
    parser.add_argument('--s3dis-points', type=int, default=200000)
    parser.add_argument('--s3dis-frames', type=int, default=30)
    parser.add_argument('--geometric-points', type=int, default=500000)
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--from-json', help='print the table of an earlier run')
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            sys.stdout.write(format_table(json.load(f)))
        return 0
    from mmengine.logging import MMLogger
    MMLogger.get_instance('bench_scene_segments', log_level='WARNING')
    result = dict(stamp=run_stamp('bench_scene_segments.py', argv), repeats=args.repeats, sources={})
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (('scannet', bench_scannet), ('sunrgbd', bench_sunrgbd), ('s3dis_2d3ds', bench_s3dis_2d3ds),
                         ('geometric', bench_geometric)):
            result['sources'][name] = fn(tmp, args)
    result['projection'] = projection_errors()
    finish_stamp(result['stamp'])
    sys.stdout.write(format_table(result))
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
