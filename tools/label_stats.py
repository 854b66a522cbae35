"""Statistics of a label split that size the token budget: regions per frame, points per region, tokens per
frame, group sizes (docs/pretraining.md, "Token budget").

    python tools/label_stats.py data/scannet/sam_mtp_labels --split train [--min-points 16] \\
        [--caps 64 128 256] [--out-dir work_dirs/label_stats] [--workers 8] [--max-frames N]
    python tools/label_stats.py --from-json work_dirs/label_stats/label_stats_train.json   # re-print the table

Prints markdown tables and writes ``label_stats_<split>.{json,md,png}`` (the PNG holds the histograms) to
``--out-dir``; every output carries the date, machine and commit of the measurement.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('label_root', nargs='?', help='label root of tools/generate_sam_labels.py')
    parser.add_argument('--split', default='train')
    parser.add_argument('--min-points', type=int, default=16,
                        help="the tokenizer's min_points (16 in configs/sam_mtp/pretrain/sam-mtp-stage1_*.py)")
    parser.add_argument('--caps', type=int, nargs='*', default=[64, 128, 256],
                        help='max_tokens values to report the merge rate of')
    parser.add_argument('--out-dir', default=os.path.join('work_dirs', 'label_stats'))
    parser.add_argument('--workers', type=int, default=0, help='processes reading the frame files')
    parser.add_argument('--max-frames', type=int, help='only the first N frames of the split')
    parser.add_argument('--from-json', help='print the tables of an earlier run instead of measuring')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.logging import print_log

    from projects.sam_mtp.labels.formats.frame_labels import LabelFormatError
    from projects.sam_mtp.labels.frame_labels.stats import compute_label_stats, format_tables, write_label_stats
    try:
        if args.from_json:
            with open(args.from_json) as f:
                print(format_tables(json.load(f)))
            return 0
        if not args.label_root:
            raise ValueError('give a label root (or --from-json)')
        stats = compute_label_stats(args.label_root, args.split, args.min_points, args.caps, args.max_frames,
                                    args.workers)
        paths = write_label_stats(stats, args.out_dir)
    except (FileNotFoundError, LabelFormatError, ValueError, KeyError, OSError) as err:
        print_log(f'{type(err).__name__}: {err}', logger='current', level=logging.ERROR)
        return 1
    print(format_tables(stats))
    print(f'wrote {paths["json"]}, {paths["markdown"]}, {paths["png"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
