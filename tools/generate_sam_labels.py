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
import argparse
import logging
import os
import sys

# Make ``projects.sam_mtp`` importable when the script is run from a checkout without ``pip install -e .``.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger, print_log  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='label config (mask_source, feature_source, label_cfg)')
    parser.add_argument('--frames-root', required=True, help='folder of per-scene frame folders')
    parser.add_argument('--out-dir', required=True, help='label root to write')
    parser.add_argument('--split', default='train', help='split name used in the output file names')
    parser.add_argument('--split-file', help='scene list (one per line); default: every scene folder')
    parser.add_argument('--axis-align-root', help='folder with <scene>/<scene>.txt meta files (ScanNet scans/); '
                        'points are axis-aligned with their axisAlignment')
    parser.add_argument('--shard', help='I/N: process shard I of N (0-based)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='take the shard from RANK/WORLD_SIZE (pytorch) or SLURM_PROCID/SLURM_NTASKS (slurm)')
    parser.add_argument('--merge', action='store_true', help='only run the merge (all shards must be done)')
    parser.add_argument('--no-auto-merge', action='store_true', help='do not merge after the last shard')
    parser.add_argument('--overwrite', action='store_true', help='the label root holds labels of other (or '
                        'unrecorded) settings: redo them with these settings (frames made with these settings are '
                        'kept)')
    parser.add_argument('--groups-from', help='<split>_groups.json whose centroids to reuse (e.g. train for val)')
    parser.add_argument('--workers', type=int, default=0, help='processes for the merge rewrite')
    parser.add_argument('--max-failure-fraction', type=float, help='overrides label_cfg.max_failure_fraction')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config entries')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from projects.sam_mtp.labels import (CheckpointMismatchError, LabelFormatError, SensFormatError,
                                         build_label_source)
    from projects.sam_mtp.labels.formats.frames import check_depth_scale, list_frames, read_scene_list
    from projects.sam_mtp.labels.frame_labels.generation import (LabelGenerationError, LabelGenerator, LabelPaths,
                                                    all_shards_reported, label_settings, merge_label_cfg,
                                                    merge_split, prepare_label_dir, release_merge_lock,
                                                    try_merge_lock)
    from projects.sam_mtp.labels.runner.output_dir import error_line
    from projects.sam_mtp.labels.runner.sharding import parse_shard, shard_from_env

    MMLogger.get_instance('sam_mtp_labels', log_level='INFO')
    progress = not args.no_progress
    try:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        label_cfg = dict(cfg.get('label_cfg', {}))
        if args.max_failure_fraction is not None:
            label_cfg['max_failure_fraction'] = args.max_failure_fraction
        label_cfg = merge_label_cfg(label_cfg)
        if args.shard and args.launcher != 'none':
            raise ValueError('use either --shard or --launcher, not both')
        shard = parse_shard(args.shard) if args.shard else shard_from_env(args.launcher)
        sources = dict(mask_source=cfg.mask_source.get('type'), feature_source=cfg.feature_source.get('type'))
        # Before any frame or model: the label root is writable and holds no labels of other settings.
        settings = label_settings(cfg.mask_source, cfg.feature_source, label_cfg, args.axis_align_root is not None)
        frames_fingerprint, labels_fingerprint = prepare_label_dir(args.out_dir, settings, args.overwrite)
        scenes = read_scene_list(args.split_file) if args.split_file else None
        records = list_frames(args.frames_root, scenes, label_cfg['frame_stride'])
        check_depth_scale(records, label_cfg['depth_scale'])
        print_log(f'{len(records)} frames (stride {label_cfg["frame_stride"]}) in '
                  f'{len({r.scene for r in records})} scenes', logger='current')
        paths = LabelPaths(args.out_dir)

        def merge() -> None:
            merge_split(args.out_dir, records, args.split, label_cfg, args.groups_from, args.workers, sources,
                        progress, frames_fingerprint, labels_fingerprint)

        if args.merge:
            merge()
            return 0

        generator = LabelGenerator(build_label_source(cfg.mask_source), build_label_source(cfg.feature_source),
                                   args.out_dir, label_cfg, args.axis_align_root, frames_fingerprint)
        report = generator.run(records, args.split, shard, progress=progress)
        status = 0
        if report['failure_fraction'] > label_cfg['max_failure_fraction']:
            print_log(f'failure fraction {report["failure_fraction"]:.3f} exceeds '
                      f'{label_cfg["max_failure_fraction"]}; see {paths.shard_report(args.split, *shard)}',
                      logger='current', level=logging.ERROR)
            status = 1
        if status == 0 and not args.no_auto_merge and all_shards_reported(paths, args.split, shard[1]):
            if try_merge_lock(paths, args.split):
                try:
                    merge()
                finally:
                    release_merge_lock(paths, args.split)
            else:
                print_log(f'another process holds {paths.merge_lock(args.split)} and is merging; if none is, '
                          f'delete the lock and run with --merge', logger='current', level=logging.WARNING)
        return status
    except (OSError, LabelFormatError, CheckpointMismatchError, SensFormatError, LabelGenerationError, ValueError,
            KeyError, RuntimeError) as err:  # bad input: a one-line message naming the file beats a traceback
        print(error_line(err), file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
