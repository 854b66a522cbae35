"""Evaluate a checkpoint with the config's evaluator (mmdet3d's IndoorMetric, SegMetric, ...).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR] [--score-thr 0.1] \
        [--task lidar_det] [--cfg-options k=v ...] [--launcher pytorch]

A checkpoint that lacks some of the model's weights (or holds them in other shapes), e.g. a pretraining
checkpoint given to a fine-tuning config, is refused before any sample is evaluated. ``--show-dir`` writes one
top-down PNG per sample (points with boxes or class colours, drawn with Matplotlib; engine/show.py).
"""
import os.path as osp
import runpy
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
# Before torch (imported by mmengine) starts OpenMP, which reads its settings once: threads that sleep instead of
# spinning while they wait, so a shared machine slows a run by the CPU share it loses (engine/cpu_threads.py).
runpy.run_path(osp.join(ROOT, 'projects', 'sam_mtp', 'engine', 'cpu_threads.py'))['set_thread_env_defaults']()


def parse_args(argv=None):
    from projects.sam_mtp.engine.launch import parse_tool_args, tool_parser
    parser = tool_parser('Test (and evaluate) a 3D model (sam_mtp / mmdet3d)', 'test config file path',
                         'the directory to save the file containing evaluation metrics')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--show', action='store_true',
                        help='show prediction results in an open3d window (needs open3d and a display)')
    parser.add_argument('--show-dir', help='write one PNG per sample here (top-down points with the predicted and '
                        'ground-truth boxes, or class colours for --task lidar_seg)')
    parser.add_argument('--score-thr', type=float, default=0.1,
                        help='predicted boxes scoring below it are not drawn (--show, --show-dir)')
    parser.add_argument('--task', type=str, default='lidar_det',
                        choices=['mono_det', 'multi-view_det', 'lidar_det', 'lidar_seg', 'multi-modality_det'],
                        help='determine the visualization method depending on the task')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (needs tta_model in config)')
    return parse_tool_args(parser, argv)


def _has_open3d():
    import importlib.util
    return importlib.util.find_spec('open3d') is not None


def trigger_visualization_hook(cfg, args):
    from projects.sam_mtp.engine.launch import ConfigCheckError
    from projects.sam_mtp.engine.show import SHOW_TASKS
    if args.show_dir and not args.show and args.task in SHOW_TASKS:
        # Our Matplotlib renderer (engine/show.py) instead of mmdet3d's, which needs open3d.
        cfg.setdefault('default_hooks', {})['visualization'] = dict(type='PointCloudShowHook', out_dir=args.show_dir,
                                                  task=args.task, score_thr=args.score_thr)
        return cfg
    if not _has_open3d():
        what = '--show (an open3d window)' if args.show else f'--show-dir with --task {args.task}'
        raise ConfigCheckError(f'{what} needs open3d, which this stack does not install; --show-dir DIR with '
                               f'--task {" or ".join(SHOW_TASKS)} writes PNGs without it')
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise ConfigCheckError(f'{args.config}: --show/--show-dir need default_hooks.visualization '
                           f'(mmdet3d\'s Det3DVisualizationHook) in the config')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        hook['test_out_dir'] = args.show_dir
    hook['vis_task'] = args.task
    hook['score_thr'] = args.score_thr
    return cfg


def check_checkpoint_fits_config(cfg, checkpoint):
    """mmengine loads the keys that match and only warns about the rest, so a checkpoint of another model would
    be scored with untrained weights: compare it with the config's model (built alone, before the Runner)."""
    import warnings

    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    from projects.sam_mtp.engine.checkpoint import check_checkpoint_fits_model
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    # The Runner builds the model again and shows its build-time warnings then; a refusal stays one line.
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(cfg.model)
    check_checkpoint_fits_model(model, checkpoint)


def main(argv=None):
    args = parse_args(argv)
    import projects.sam_mtp  # noqa: F401  (registers modules, CPU op fallbacks, safe checkpoint types)
    from projects.sam_mtp.engine.launch import (
        ConfigCheckError,
        build_runner,
        check_dataset_files,
        load_tool_config,
        run_tool,
    )

    def test():
        if not osp.isfile(args.checkpoint):
            raise ConfigCheckError(f'{args.checkpoint}: checkpoint file does not exist')
        cfg = load_tool_config(args)
        cfg.load_from = args.checkpoint
        if args.show or args.show_dir:
            cfg = trigger_visualization_hook(cfg, args)
        if args.tta:
            if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
                raise ConfigCheckError(f'{args.config}: --tta needs tta_model and tta_pipeline in the config')
            cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
            cfg.tta_model.module = cfg.model
            cfg.model = cfg.tta_model
        check_dataset_files(cfg, args.config, phases=('test', ))
        check_checkpoint_fits_config(cfg, args.checkpoint)
        build_runner(args.launcher, cfg).test()

    run_tool(args.config, test)


if __name__ == '__main__':
    main()
