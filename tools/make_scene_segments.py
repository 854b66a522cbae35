"""Make scene segments (``<data_root>/scene_segments/<sample>.bin`` + ``.json``) for SAM-guided fine-tuning.

One tool for every dataset; the config picks the segmenter (``segment_cfg.type``; docs/finetune.md, "Scene
segments"):

    # ScanNet: region maps of tools/generate_sam_labels.py, merged across the exported frames
    python tools/make_scene_segments.py configs/sam_mtp/segments/scannet_sam_multiview.py \\
        --data-root data/scannet --info data/scannet/scannet_infos_train.pkl data/scannet/scannet_infos_val.pkl \\
        --frames-root data/scannet/posed_images --labels-dir data/scannet/sam_mtp_labels
    # SUN RGB-D: SAM on each sample's image, points projected with the info's depth2img
    python tools/make_scene_segments.py configs/sam_mtp/segments/sunrgbd_sam.py --data-root data/sunrgbd \\
        --info data/sunrgbd/sunrgbd_infos_train.pkl data/sunrgbd/sunrgbd_infos_val.pkl
    # S3DIS with the Stanford 2D-3D-S images (rooms without frames: --fallback-geometric)
    python tools/make_scene_segments.py configs/sam_mtp/segments/s3dis_2d3ds_sam.py --data-root data/s3dis \\
        --info data/s3dis/s3dis_infos_Area_*.pkl --images-root data/2d3ds
    # any dataset without images: geometric over-segmentation, NOT SAM
    python tools/make_scene_segments.py configs/sam_mtp/segments/geometric_oversegmentation.py \\
        --data-root data/s3dis --info data/s3dis/s3dis_infos_Area_*.pkl

Sharded by sample with ``--shard I/N`` or ``--launcher pytorch|slurm``; rerunning resumes (finished samples are
skipped). Each sidecar records the output settings; a rerun with other settings into a folder that holds segment
files stops before building any model, naming the differing settings; ``--overwrite`` redoes those files
(docs/finetune.md, "Scene segments"). Exit status: 0 on success; 1 when failures exceed
``--max-failure-fraction`` or the input is bad (one line ``error: ...`` on stderr).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from projects.sam_mtp.labels.runner import cli  # noqa: E402


def parse_args(argv=None):
    parser = cli.tool_parser(__doc__, 'segments config: segment_cfg (type + settings), mask_source for SAM '
                             'segmenters, optional fallback_cfg')
    parser.add_argument('--data-root', required=True, help='mmdet3d data root (points/, scene_segments/, images)')
    parser.add_argument('--info', nargs='+', required=True, help='mmdet3d info file(s) listing the samples')
    parser.add_argument('--frames-root', help='PosedFramesSegmenter: folder of <sample>/ frame folders (export or '
                        'flat layout, docs/labels.md)')
    parser.add_argument('--labels-dir', help='PosedFramesSegmenter: label root of tools/generate_sam_labels.py '
                        'whose region maps to use (default: run the config\'s mask_source)')
    parser.add_argument('--images-root', help='S3DIS2D3DSSegmenter: the Stanford 2D-3D-S root (area_<N>/data/...)')
    parser.add_argument('--transforms-dir', help='S3DIS2D3DSSegmenter: <sample>.txt 4x4 room-to-area transforms to '
                        'use instead of the registration')
    parser.add_argument('--fallback-geometric', action='store_true',
                        help='samples without images get geometric (NOT SAM) segments instead of failing')
    parser.add_argument('--segments-dir', help='output folder (default <data-root>/scene_segments, where '
                        'LoadSceneSegments looks)')
    parser.add_argument('--points-dir', help='points folder (default <data-root>/points)')
    cli.add_shard_arguments(parser)
    parser.add_argument('--overwrite', action='store_true', help='redo files made with other (or unrecorded) '
                        'settings, by another method or for other points (files made with these settings are kept)')
    cli.add_run_arguments(parser, 'the config\'s max_failure_fraction (default 0.05)')
    return parser.parse_args(argv)


def segment(args) -> int:
    from projects.sam_mtp.labels.segments.jobs import make_scene_segments
    cfg = cli.load_config(args.config, args.cfg_options, logger='sam_mtp_segments')
    if 'segment_cfg' not in cfg:
        raise KeyError(f'{args.config}: has no segment_cfg (see configs/sam_mtp/segments/)')
    max_failures = args.max_failure_fraction
    if max_failures is None:
        max_failures = cfg.get('max_failure_fraction', 0.05)
    fallback = cfg.get('fallback_cfg')
    report = make_scene_segments(
        args.data_root, args.info, cfg.segment_cfg.to_dict(), cfg.get('mask_source'),
        frames_root=args.frames_root, labels_dir=args.labels_dir, images_root=args.images_root,
        transforms_dir=args.transforms_dir, fallback_cfg=fallback and fallback.to_dict(),
        geometric_fallback=args.fallback_geometric, segments_dir=args.segments_dir, points_dir=args.points_dir,
        shard=cli.shard_from_args(args), overwrite=args.overwrite, progress=not args.no_progress,
        max_failure_fraction=max_failures, points_load_dim=cfg.get('points_load_dim', 6))
    return 1 if report['failure_fraction'] > max_failures else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run_tool(lambda: segment(args))


if __name__ == '__main__':
    sys.exit(main())
