r"""The README's main job: the whole SAM-MTP pipeline on bundled (generated) demo data, on CPU, with a verdict
that survives a rerun.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/demo/scannet] [--seeds 0 1 2] \
        [--tasks seg] [--label-task seg --label-fractions 0.25] [--targets class-embedding] \
        [--methods sam-mtp point-mae ...] [--fresh]

Steps (each resumable: a finished step leaves a marker and is skipped on the next run):
  1. synthetic ScanNet-format scenes + posed RGB-D frames            tools/make_synthetic_data.py
  2. offline labels with STAND-IN sources (instance images as masks; as features a class embedding + noise, or
     with --targets random-vit a random ViT on the RGB frames)       tools/generate_sam_labels.py
  3. for every seed: stage 1 (region distillation) and stage 2 (masked token prediction), and the pretraining
     of every other method of --methods (Point-MAE, Bridge3D, the paper's ablation rows)        tools/train.py
  4. frozen-feature linear probe of per-point semantics: random-init, stage-1 and stage-2 encoders of every
     seed                                                             tools/linear_probe.py
  5. fine-tuning, pretrained vs scratch in pairs: pair s fine-tunes seed s's stage-2 encoder (and every other
     method's) and a scratch encoder with the same fine-tuning seed (same data order, augmentation and head
     initialisation), on all training scenes and, for the label-efficiency curve, on fractions of them
  6. report: <work-dir>/report.{md,json}: paired differences with t-intervals (every method vs scratch and vs
     SAM-MTP), the label-efficiency curve, the probe, pictures. tools/demo_report_to_docs.py turns report.json
     files into docs/demo_results.md.

Every run is seeded (mmengine ``randomness`` with deterministic kernels), so the same command on the same
machine gives the same numbers. Every step runs the command-line tool a user runs; logs are in <work-dir>/logs/.
The pipeline itself is projects/sam_mtp/demo/ (runner.py: the steps; methods.py: the methods; finetune.py;
report.py).
"""
import argparse
import os.path as osp
import runpy
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Before torch starts OpenMP, and inherited by every step's process: threads that sleep instead of spinning while
# they wait, so a shared machine slows the demo by the CPU share it loses (engine/cpu_threads.py).
runpy.run_path(osp.join(ROOT, 'projects', 'sam_mtp', 'engine', 'cpu_threads.py'))['set_thread_env_defaults']()
sys.path.insert(0, ROOT)

from projects.sam_mtp.demo.methods import METHODS  # noqa: E402
from projects.sam_mtp.demo.settings import FINETUNE_CONFIGS, TARGETS, DemoSettings, DemoSettingsError  # noqa: E402


def parse_args(argv=None):
    """The command line as :class:`DemoSettings` (whose fields give the defaults)."""
    default = DemoSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', help='default work_dirs/demo (work_dirs/demo_random_vit with '
                                           '--targets random-vit)')
    parser.add_argument('--data-root', help='default data/demo/scannet (data/demo_random_vit/scannet with '
                                            '--targets random-vit)')
    parser.add_argument('--targets', choices=sorted(TARGETS), default=default.targets,
                        help='stand-in feature source of the region targets (see the steps above)')
    parser.add_argument('--seeds', type=int, nargs='+', default=default.seeds,
                        help='one pretraining (stage 1 + 2) and one pretrained/scratch fine-tuning pair per seed')
    parser.add_argument('--tasks', nargs='+', default=default.tasks, choices=sorted(FINETUNE_CONFIGS),
                        help='fine-tuning tasks compared on all training scenes (default: the segmentor only; '
                             'a pilot of 3DETR and GroupFree3D resolved nothing and did not fit the 20 minutes)')
    parser.add_argument('--label-task', choices=sorted(FINETUNE_CONFIGS), default=default.label_task,
                        help='task of the label-efficiency curve')
    parser.add_argument('--label-fractions', type=float, nargs='*', default=default.label_fractions,
                        help='fractions of the training scenes for the label-efficiency curve (100 %% comes from '
                             'the main comparison); none: no curve')
    parser.add_argument('--train-scenes', type=int, default=default.train_scenes)
    parser.add_argument('--val-scenes', type=int, default=default.val_scenes)
    parser.add_argument('--frames-per-scene', type=int, default=default.frames_per_scene)
    parser.add_argument('--points-per-scene', type=int, default=default.points_per_scene)
    parser.add_argument('--pretrain-epochs', type=int, default=default.pretrain_epochs,
                        help='epochs of both pretraining stages (default: the demo configs\', 15 for stage 1 and 30 '
                             'for stage 2)')
    parser.add_argument('--finetune-epochs', type=int, default=default.finetune_epochs,
                        help='max_epochs of every fine-tuning run (the synthetic configs\' own is a 2-epoch smoke run)')
    parser.add_argument('--label-cfg-options', nargs='+', default=default.label_cfg_options, metavar='KEY=VALUE',
                        help='passed to generate_sam_labels.py --cfg-options (e.g. label_cfg.num_groups=8 for a tiny '
                             'run with fewer regions than the 32 K-means groups)')
    parser.add_argument('--methods', nargs='+', default=default.methods, choices=list(METHODS), metavar='METHOD',
                        help='pretraining methods, each fine-tuned and probed per seed and compared with scratch and '
                             'with sam-mtp (which must be one of them): ' + ', '.join(
                                 f'{m.name} ({m.paper})' for m in METHODS.values()))
    parser.add_argument('--fresh', action='store_true', help='ignore finished-step markers and redo everything')
    # Internal: run the tools in this process (tests).
    parser.add_argument('--in-process', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        return DemoSettings(**vars(args)).check()
    except DemoSettingsError as err:
        parser.error(str(err))


def main(argv=None):
    settings = parse_args(argv)
    from projects.sam_mtp.demo.runner import run_demo
    return run_demo(settings)


if __name__ == '__main__':
    main()
