"""Generate SAM-MTP's offline labels (SAM regions, DINOv2 region features, K-means groups) for one split.

One GPU::

    python tools/generate_sam_labels.py configs/sam_mtp/labels/scannet_sam_dinov2.py \\
        --frames-root data/scannet/posed_images --out-dir data/scannet/sam_labels \\
        --split train --split-file data/scannet/meta_data/scannetv2_train.txt \\
        --axis-align-root data/scannet/scans

Many GPUs / nodes: the same command with ``--shard I/N`` per process, or under ``torchrun`` / ``srun`` with
``--launcher pytorch`` / ``--launcher slurm`` (rank and world size from the environment). The process that
finishes the last shard merges automatically (K-means, group ids, ``<split>_labels.pkl``); ``--merge`` runs
the merge explicitly. Rerunning any command resumes: finished frames are validated and skipped.

The label root records the output settings (``label_settings.json``: sources, K, ...; docs/labels.md, "Reruns").
A rerun with other settings into a root that holds labels stops before loading any frame or model, naming the
differing settings; ``--overwrite`` redoes the frames of other settings (frames made with these settings are kept).

Scene segments for fine-tuning are made afterwards by ``tools/make_scene_segments.py`` (its ScanNet config
reuses the region maps written here with ``--labels-dir``).

Exit status: 0 on success; 1 when failures exceed ``--max-failure-fraction`` or the input is bad (one line
``error: ...`` on stderr).
"""
import os
import sys

# Make ``projects.sam_mtp`` importable when the script is run from a checkout without ``pip install -e .``.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from projects.sam_mtp.labels.runner import cli  # noqa: E402


def parse_args(argv=None):
    parser = cli.tool_parser(__doc__, 'label config (mask_source, feature_source, label_cfg)')
    parser.add_argument('--frames-root', required=True, help='folder of per-scene frame folders')
    parser.add_argument('--out-dir', required=True, help='label root to write')
    parser.add_argument('--split', default='train', help='split name used in the output file names')
    parser.add_argument('--split-file', help='scene list (one per line); default: every scene folder')
    parser.add_argument('--axis-align-root', help='folder with <scene>/<scene>.txt meta files (ScanNet scans/); '
                        'points are axis-aligned with their axisAlignment')
    cli.add_shard_arguments(parser)
    parser.add_argument('--merge', action='store_true', help='only run the merge (all shards must be done)')
    parser.add_argument('--no-auto-merge', action='store_true', help='do not merge after the last shard')
    parser.add_argument('--overwrite', action='store_true', help='the label root holds labels of other (or '
                        'unrecorded) settings: redo them with these settings (frames made with these settings are '
                        'kept)')
    parser.add_argument('--groups-from', help='<split>_groups.json whose centroids to reuse (e.g. train for val)')
    parser.add_argument('--workers', type=int, default=0, help='processes for the merge rewrite')
    cli.add_run_arguments(parser, 'label_cfg.max_failure_fraction')
    return parser.parse_args(argv)


def generate(args) -> int:
    from projects.sam_mtp.labels.frame_labels.generation import generate_labels
    cfg = cli.load_config(args.config, args.cfg_options)
    label_cfg = dict(cfg.get('label_cfg', {}))
    if args.max_failure_fraction is not None:
        label_cfg['max_failure_fraction'] = args.max_failure_fraction
    report = generate_labels(
        cfg.mask_source, cfg.feature_source, args.frames_root, args.out_dir, args.split, label_cfg,
        args.split_file, args.axis_align_root, cli.shard_from_args(args), merge_only=args.merge,
        auto_merge=not args.no_auto_merge, overwrite=args.overwrite, groups_from=args.groups_from,
        workers=args.workers, progress=not args.no_progress)
    return 1 if report is not None and report['failure_fraction'] > report['max_failure_fraction'] else 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run_tool(lambda: generate(args))


if __name__ == '__main__':
    sys.exit(main())
