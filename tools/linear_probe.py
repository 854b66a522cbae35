"""Frozen-feature linear probe: how well does one linear layer on the frozen encoder's token features predict
every point's semantic class? (projects/sam_mtp/engine/linear_probe.py explains the protocol.)

    python tools/linear_probe.py SEG_CONFIG [CHECKPOINT ...] [--random-init SEED ...] [--out probe.json] \
        [--weight-decay 1e-4] [--cfg-options k=v ...]

SEG_CONFIG is a segmentation fine-tuning config (SamMtpPointBackbone + a ScanNet-format seg dataset), e.g.
configs/sam_mtp/demo/tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py: its backbone (tokenizer and
encoder), its training scenes (fit) and its test scenes (score), each scene once through its test pipeline.
Every CHECKPOINT (stage 1, stage 2 or fine-tuned; encoder keys under ``backbone.``) and every random
initialisation (--random-init SEED) is probed; one JSON line per encoder is printed, and --out writes all.
"""
import argparse
import json
import os.path as osp
import sys
import time

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
    from mmengine.config import Config
    from mmengine.logging import print_log

    import projects.sam_mtp  # noqa: F401  (registers modules and the CPU op fallbacks)
    from projects.sam_mtp.engine.launch import ConfigCheckError, check_dataset_files, run_tool
    from projects.sam_mtp.engine.linear_probe import (
        build_frozen_backbone,
        build_probe_datasets,
        load_scenes,
        probe_encoder,
    )
    from projects.sam_mtp.labels.fileio import atomic_write

    def probe():
        if not osp.isfile(args.config):
            raise ConfigCheckError(f'{args.config}: config file does not exist')
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        for path in args.checkpoints:
            if not osp.isfile(path):
                raise ConfigCheckError(f'{path}: checkpoint file does not exist')
        check_dataset_files(cfg, args.config, phases=('train', 'test'))
        head = cfg.model.get('decode_head', {})
        if 'num_classes' not in head:
            raise ConfigCheckError(f'{args.config}: no model.decode_head.num_classes; the probe needs a '
                                   'segmentation config')
        train_set, test_set = build_probe_datasets(cfg)
        classes = list(train_set.metainfo.get('classes', range(head['num_classes'])))[:head['num_classes']]
        ignore_index = head.get('ignore_index', len(classes))
        train_scenes = load_scenes(train_set, center_xy=not args.no_center)
        test_scenes = load_scenes(test_set, center_xy=not args.no_center)
        encoders = [(path, None) for path in args.checkpoints] + [(None, seed) for seed in args.random_init]
        results = []
        for checkpoint, seed in encoders:
            start = time.time()
            backbone = build_frozen_backbone(cfg, checkpoint, seed or 0)
            metrics = probe_encoder(backbone, train_scenes, test_scenes, classes, ignore_index, args.weight_decay)
            result = dict(encoder=checkpoint or 'random-init', seed=seed, **metrics,
                          seconds=round(time.time() - start, 1))
            results.append(result)
            print_log(f'[probe] {result["encoder"]}{"" if seed is None else f" (seed {seed})"}: mIoU '
                      f'{metrics["miou"]:.3f}, acc {metrics["acc"]:.3f}, coverage {metrics["coverage"]:.3f} '
                      f'({result["seconds"]} s)', logger='current')
        if args.out:
            atomic_write(args.out, lambda f: f.write(json.dumps(results, indent=1).encode()))
        return results

    return run_tool(args.config, probe)


if __name__ == '__main__':
    main()
