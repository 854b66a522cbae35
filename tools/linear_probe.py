"""Frozen-feature linear probe: how well does one linear layer on the frozen encoder's token features predict
every point's semantic class? (projects/sam_mtp/evaluation/linear_probe.py explains the protocol.)

    python tools/linear_probe.py SEG_CONFIG [CHECKPOINT ...] [--random-init SEED ...] [--out probe.json] \
        [--weight-decay 1e-4] [--cfg-options k=v ...]

SEG_CONFIG is a segmentation fine-tuning config (SamMtpPointBackbone + a ScanNet-format seg dataset), e.g.
configs/sam_mtp/demo/tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py: its backbone (tokenizer and
encoder), its training scenes (fit) and its test scenes (score), each scene once through its test pipeline.
Every CHECKPOINT (stage 1, stage 2 or fine-tuned; encoder keys under ``backbone.``) and every random
initialisation (--random-init SEED) is probed; one JSON line per encoder is printed, and --out writes all.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='segmentation fine-tuning config (backbone + scenes)')
    parser.add_argument('checkpoints', nargs='*', help='checkpoints whose encoder (prefix backbone.) is probed')
    parser.add_argument('--random-init', type=int, nargs='*', default=[], metavar='SEED',
                        help='also probe the encoder at random initialisation with these seeds')
    parser.add_argument('--weight-decay', type=float, default=1e-4, help='L2 penalty of the linear layer')
    parser.add_argument('--no-center', action='store_true',
                        help='keep scene coordinates (default: move each scene\'s xy mean to 0, as the '
                             'pretraining frames are)')
    parser.add_argument('--out', help='write the results (a JSON list) here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value')
    args = parser.parse_args(argv)
    if not args.checkpoints and not args.random_init:
        parser.error('give at least one CHECKPOINT or --random-init SEED')
    return args


def main(argv=None):
    args = parse_args(argv)
    import projects.sam_mtp  # noqa: F401  (registers modules and the CPU op fallbacks)
    from projects.sam_mtp.engine.launch import run_tool
    from projects.sam_mtp.evaluation.linear_probe import run_linear_probe

    return run_tool(args.config, lambda: run_linear_probe(
        args.config, args.checkpoints, args.random_init, weight_decay=args.weight_decay,
        center_xy=not args.no_center, out=args.out, cfg_options=args.cfg_options))


if __name__ == '__main__':
    main()
