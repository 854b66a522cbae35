"""Train a model from a config, with mmdet3d's ``tools/train.py`` flags.

    python tools/train.py configs/sam_mtp/pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py \
        [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr] [--sync_bn torch] [--cfg-options k=v ...] \
        [--launcher pytorch]
"""
import logging
import os.path as osp
import runpy
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Make the repository importable when this file is run as a script from anywhere.
sys.path.insert(0, ROOT)
# Before torch (imported by mmengine) starts OpenMP, which reads its settings once: threads that sleep instead of
# spinning while they wait, so a shared machine slows a run by the CPU share it loses (engine/cpu_threads.py).
runpy.run_path(osp.join(ROOT, 'projects', 'sam_mtp', 'engine', 'cpu_threads.py'))['set_thread_env_defaults']()

from mmengine.logging import print_log  # noqa: E402


def parse_args(argv=None):
    from projects.sam_mtp.engine.launch import parse_tool_args, tool_parser
    parser = tool_parser('Train a 3D model (sam_mtp / mmdet3d)', 'train config file path',
                         'the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--sync_bn', choices=['none', 'torch', 'mmcv'], default='none',
                        help='convert all BatchNorm layers in the model to SyncBatchNorm (SyncBN) layer')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR by the actual total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint; without a path, from the latest one in work_dir')
    return parse_tool_args(parser, argv)


def build_cfg(args):
    from projects.sam_mtp.engine.launch import ConfigCheckError, load_tool_config
    if args.ceph:
        raise ConfigCheckError('--ceph: this plugin ships no ceph backend config; set backend_args in the '
                               'config instead')
    cfg = load_tool_config(args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if optim_wrapper == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in your config.', logger='current',
                      level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', \
                f'`--amp` is only supported when the optimizer wrapper type is OptimWrapper, got {optim_wrapper}'
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.sync_bn != 'none':
        cfg.sync_bn = args.sync_bn
    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr and 'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise ConfigCheckError(f'{args.config}: --auto-scale-lr needs auto_scale_lr = dict(enable=False, '
                                   f'base_batch_size=N) in the config')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise ConfigCheckError(f'--resume {args.resume}: checkpoint file does not exist')
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    # Importing the package registers our modules, installs the CPU point-op fallbacks and the safe
    # checkpoint types, whether or not the config lists it in custom_imports.
    import projects.sam_mtp  # noqa: F401
    from projects.sam_mtp.engine.launch import build_runner, check_dataset_files, check_model_config, run_tool

    def train():
        cfg = build_cfg(args)
        check_dataset_files(cfg, args.config, phases=('train', 'val'))
        check_model_config(cfg, args.config)
        build_runner(args.launcher, cfg).train()

    run_tool(args.config, train)


if __name__ == '__main__':
    main()
