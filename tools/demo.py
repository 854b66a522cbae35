"""The README's main job: the whole SAM-MTP pipeline on bundled (generated) demo data, on CPU, with a verdict
that survives a rerun.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/demo/scannet] [--seeds 0 1 2] \
        [--tasks seg] [--label-task seg --label-fractions 0.25] [--targets class-embedding] [--fresh]

Steps (each resumable: a finished step leaves a marker and is skipped on the next run):
  1. synthetic ScanNet-format scenes + posed RGB-D frames            tools/make_synthetic_data.py
  2. offline labels with STAND-IN sources (instance images as masks; as features a class embedding + noise, or
     with --targets random-vit a random ViT that carries no class)   tools/generate_sam_labels.py
  3. for every seed: stage 1 (region distillation) and stage 2 (masked token prediction)    tools/train.py
  4. frozen-feature linear probe of per-point semantics: random-init, stage-1 and stage-2 encoders of every
     seed                                                             tools/linear_probe.py
  5. fine-tuning, pretrained vs scratch in pairs: pair s fine-tunes seed s's stage-2 encoder and a scratch
     encoder with the same fine-tuning seed (same data order, augmentation and head initialisation), on all
     training scenes and, for the label-efficiency curve, on fractions of them; mmdet3d's metrics
  6. report: <work-dir>/report.{md,json}: paired differences with t-intervals, the label-efficiency curve, the
     probe, pictures. tools/demo_report_to_docs.py turns report.json files into docs/demo_results.md.

Every run is seeded (mmengine ``randomness`` with deterministic kernels), so the same command on the same
machine gives the same numbers. Every step runs the command-line tool a user runs; logs are in <work-dir>/logs/.
"""
import argparse
import copy
import datetime
import functools
import glob
import json
import os
import os.path as osp
import platform
import re
import resource
import runpy
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Before torch starts OpenMP, and inherited by every step's process: threads that sleep instead of spinning while
# they wait, so a shared machine slows the demo by the CPU share it loses (engine/cpu_threads.py).
runpy.run_path(osp.join(ROOT, 'projects', 'sam_mtp', 'engine', 'cpu_threads.py'))['set_thread_env_defaults']()
# Configs are found from the repository, so the demo runs from any folder (data and work dirs are relative to it).
CONFIGS = osp.join(ROOT, 'configs', 'sam_mtp')
DEMO_CONFIGS = osp.join(CONFIGS, 'demo')
# Pretraining configs of the demo: the paper's stage 1 and stage 2 at CPU scale.
STAGE1_CONFIG = osp.join(DEMO_CONFIGS, 'sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py')
STAGE2_CONFIG = osp.join(DEMO_CONFIGS, 'sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py')

# Lines of a tool's output that are worth showing live; everything goes to the step's log file.
PROGRESS = re.compile(r'mmengine - (INFO|WARNING|ERROR) - (Epoch\(train\).*\]\[\s*(\d+)/\3\]|wrote|merged|'
                      r'shard|scene\d+_\d+: \d+ segments|\[finetune\]|\[probe\])|Error')

# Fine-tuning tasks of the demo: the synthetic-scale twins of the paper's downstream configs.
FINETUNE_CONFIGS = {
    'groupfree3d': osp.join(DEMO_CONFIGS, 'groupfree3d_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py'),
    '3detr': osp.join(DEMO_CONFIGS, 'threedetr_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py'),
    'seg': osp.join(DEMO_CONFIGS, 'tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py'),
}
# The probe reads its backbone (tokenizer + encoder) and scenes from the segmentation config.
PROBE_CONFIG = FINETUNE_CONFIGS['seg']
# Metrics in the report: detection mAP over the classes present in the demo's val scenes (see
# engine.report.mean_over_present_classes), segmentation mIoU / accuracy from mmdet3d's SegMetric.
REPORT_METRICS = {'groupfree3d': ('AP25', 'AP50'), '3detr': ('AP25', 'AP50'), 'seg': ('miou', 'acc'),
                  'probe': ('miou', 'acc')}
# Label sources (--targets): both use the synthetic instance images as SAM masks.
TARGETS = {
    'class-embedding': (osp.join(CONFIGS, 'labels', 'demo_class_targets.py'),
                        'STAND-IN features: a fixed random embedding of each pixel\'s class + noise (they carry the '
                        'ground-truth class, as DINOv2 features carry semantics on real images)'),
    'random-vit': (osp.join(CONFIGS, 'labels', 'demo_stand_in.py'),
                   'STAND-IN features: a seeded random 64-d ViT on the RGB frames (they carry no ground-truth '
                   'class beyond what a random network sees in the colours)'),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', help='default work_dirs/demo (work_dirs/demo_random_vit with '
                                           '--targets random-vit)')
    parser.add_argument('--data-root', help='default data/demo/scannet (data/demo_random_vit/scannet with '
                                            '--targets random-vit)')
    parser.add_argument('--targets', choices=sorted(TARGETS), default='class-embedding',
                        help='stand-in feature source of the region targets (see the steps above)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='one pretraining (stage 1 + 2) and one pretrained/scratch fine-tuning pair per seed')
    # The segmentor only by default: in a pilot of 4 pairs (2026-12-01), neither task's fine-tuning showed a
    # difference, and 3DETR's runs (AP25 pretrained - scratch -0.02 in both of the first two pairs) did not fit
    # the 20-minute budget beside the label-efficiency runs; --tasks 3detr groupfree3d adds them.
    parser.add_argument('--tasks', nargs='+', default=['seg'], choices=sorted(FINETUNE_CONFIGS),
                        help='fine-tuning tasks compared on all training scenes')
    parser.add_argument('--label-task', choices=sorted(FINETUNE_CONFIGS), default='seg',
                        help='task of the label-efficiency curve')
    parser.add_argument('--label-fractions', type=float, nargs='*', default=[0.25],
                        help='fractions of the training scenes for the label-efficiency curve (100 %% comes from '
                             'the main comparison); none: no curve')
    parser.add_argument('--train-scenes', type=int, default=12)
    parser.add_argument('--val-scenes', type=int, default=12)
    parser.add_argument('--frames-per-scene', type=int, default=10)
    parser.add_argument('--points-per-scene', type=int, default=20000)
    parser.add_argument('--pretrain-epochs', type=int, default=None,
                        help='epochs of both pretraining stages (default: the demo configs\', 15 for stage 1 and 30 '
                             'for stage 2)')
    parser.add_argument('--finetune-epochs', type=int, default=30,
                        help='max_epochs of every fine-tuning run (the synthetic configs\' own is a 2-epoch smoke run)')
    parser.add_argument('--label-cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='passed to generate_sam_labels.py --cfg-options (e.g. label_cfg.num_groups=8 for a tiny '
                             'run with fewer regions than the 32 K-means groups)')
    parser.add_argument('--fresh', action='store_true', help='ignore finished-step markers and redo everything')
    # Internal: run the tools in this process (tests), and the fine-tuning worker that shares one process.
    parser.add_argument('--in-process', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--finetune-worker', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    suffix = '' if args.targets == 'class-embedding' else '_' + args.targets.replace('-', '_')
    args.work_dir = args.work_dir or osp.join('work_dirs', 'demo' + suffix)
    args.data_root = args.data_root or osp.join('data', 'demo' + suffix, 'scannet')
    if args.pretrain_epochs is not None and args.pretrain_epochs < 2:
        parser.error('--pretrain-epochs must be >= 2 (one warm-up epoch, then the cosine schedule)')
    if any(not 0 < f < 1 for f in args.label_fractions):
        parser.error(f'--label-fractions must lie in (0, 1), got {args.label_fractions}')
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds must be distinct, got {args.seeds}')
    return args


# ---------------------------------------------------------------------------------------------- fine-tuning jobs
def finetune_jobs(args, stage2_checkpoints):
    """Every fine-tuning run of the demo: (task, fraction) x seed x {pretrained, scratch}."""
    settings = [(task, 1.0) for task in args.tasks]
    settings += [(args.label_task, f) for f in sorted(args.label_fractions, reverse=True)]
    jobs = []
    for task, fraction in settings:
        for seed in args.seeds:
            for init in ('pretrained', 'scratch'):
                tag = '' if fraction == 1.0 else f'_{round(100 * fraction)}pct'
                jobs.append(dict(name=f'{task}{tag}_{init}_seed{seed}', task=task, fraction=fraction, init=init,
                                 seed=seed, checkpoint=stage2_checkpoints[seed] if init == 'pretrained' else None))
    return jobs


def training_subset(num_scenes, fraction, seed):
    """Indices of the labelled training scenes of a label-efficiency run: the first ``max(1, round(fraction *
    num_scenes))`` of a permutation drawn from ``seed``, so both runs of a pair use the same scenes and a
    seed's smaller subsets lie inside its larger ones."""
    import numpy as np
    count = max(1, int(round(fraction * num_scenes)))
    return sorted(np.random.default_rng(seed).permutation(num_scenes)[:count].tolist())


@functools.lru_cache(maxsize=None)
def _task_config(task):
    """The task's synthetic config, read once per process. Its text is left unformatted: mmengine formats it with
    yapf ~5 times per run (log, dump, hooks, checkpoint meta), which costs more than a tiny run's evaluation; the
    text stays valid Python. (Config.fromfile drops its format_python_code argument for plain configs in mmengine
    0.10.7, hence the copy.)"""
    from mmengine.config import Config
    loaded = Config.fromfile(FINETUNE_CONFIGS[task])
    return Config(loaded.to_dict(), cfg_text=loaded.text, filename=loaded.filename, format_python_code=False)


def finetune_config(job, data_root, epochs):
    """The config of one fine-tuning run: the task's synthetic config with the demo's data root, seed,
    initialisation, epochs and (label efficiency) training subset."""
    import mmengine
    import numpy as np

    from projects.sam_mtp.engine.launch import _iter_dataset_cfgs
    cfg = copy.deepcopy(_task_config(job['task']))
    root = data_root.rstrip('/') + '/'
    for phase in ('train', 'val', 'test'):
        for dataset in _iter_dataset_cfgs(cfg[f'{phase}_dataloader'].dataset):
            dataset.data_root = root
            # No worker processes, so nothing to share: skip mmengine's serialisation and its gc.collect(), which
            # takes seconds in a process that has already run many fine-tunings.
            dataset.serialize_data = False
    # Unique: mmengine keeps one logger per experiment name and process, and a redone run must get its own log.
    cfg.experiment_name = f"{job['name']}_{time.strftime('%Y%m%d_%H%M%S')}_{time.monotonic_ns() % 10**9:09d}"
    # The same for the visualizer (mmdet3d names it 'visualizer'): one instance per run, writing to its own folder.
    if cfg.get('visualizer'):
        cfg.visualizer.name = cfg.experiment_name
    # Deterministic kernels where torch has them; pretrained and scratch runs of a pair draw the same numbers
    # (the encoder is initialised, then overwritten by the checkpoint, before the head is).
    cfg.randomness = dict(seed=job['seed'], deterministic=True)
    cfg.train_cfg.max_epochs = epochs
    # Evaluate once, after training, on the val split (the test dataloader of these configs): no validation loop
    # (mmengine validates at the last epoch whatever the interval, which evaluated every run twice), one
    # checkpoint at the end, a log line every 10 iterations. None of this changes the trained weights.
    cfg.train_cfg.val_interval = epochs + 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.logger.interval = 10
    backbone = cfg.model.backbone
    if job['init'] == 'scratch':
        backbone.init_cfg = None
    else:
        backbone.init_cfg = dict(type='Pretrained', checkpoint=job['checkpoint'], prefix='backbone.')
    if job['fraction'] < 1.0:
        loader = cfg.train_dataloader
        wrapped = loader.dataset.get('type') == 'RepeatDataset'
        dataset = loader.dataset.dataset if wrapped else loader.dataset
        infos = mmengine.load(osp.join(root, dataset.ann_file))['data_list']
        subset = training_subset(len(infos), job['fraction'], job['seed'])
        # The same number of iterations as on all scenes: the subset is repeated.
        repeat = max(1, int(round(len(infos) / len(subset))))
        if 'scene_idxs' in dataset:  # ScanNetSegDataset draws patches by a resampled scene index
            idxs = dataset.scene_idxs
            idxs = np.load(osp.join(root, idxs)) if isinstance(idxs, str) else np.asarray(idxs)
            dataset.scene_idxs = np.tile(idxs[np.isin(idxs, subset)], repeat).tolist()
        else:
            dataset.indices = subset
            if wrapped:
                loader.dataset.times = loader.dataset.get('times', 1) * repeat
            else:
                loader.dataset = dict(type='RepeatDataset', times=repeat, dataset=dataset)
    return cfg


def _finetune_metrics(task, metrics):
    from projects.sam_mtp.engine.report import mean_over_present_classes
    if task == 'seg':
        return {k: float(metrics[k]) for k in ('miou', 'acc', 'acc_cls') if k in metrics}
    return dict(AP25=mean_over_present_classes(metrics, '_AP_0.25'),
                AP50=mean_over_present_classes(metrics, '_AP_0.50'),
                mAP_0_25_mmdet3d=float(metrics.get('mAP_0.25', float('nan'))))


def finetune_worker(jobs_file, work_dir, data_root, epochs, fresh=False):
    """Fine-tune every job of ``jobs_file`` in this one process and write one result.json per run."""
    from mmengine.logging import print_log
    from mmengine.runner import Runner

    import projects.sam_mtp  # noqa: F401
    from projects.sam_mtp.labels.fileio import atomic_write
    with open(jobs_file) as f:
        jobs = json.load(f)
    for job in jobs:
        run_dir = osp.join(work_dir, 'finetune', job['name'])
        result_path = osp.join(run_dir, 'result.json')
        if osp.isfile(result_path) and not fresh:
            print_log(f'[finetune] {job["name"]}: already done', logger='current')
            continue
        start, cpu = time.time(), _cpu_seconds(resource.RUSAGE_SELF)
        cfg = finetune_config(job, data_root, epochs)
        cfg.work_dir = run_dir
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.test()
        result = dict(job, seconds=round(time.time() - start, 1),
                      cpu_seconds=round(_cpu_seconds(resource.RUSAGE_SELF) - cpu, 1),
                      metrics=_finetune_metrics(job['task'], metrics),
                      raw_metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        # result.json marks the run as done for a rerun: write it atomically.
        atomic_write(result_path, lambda f: f.write(json.dumps(result, indent=1).encode()))
        shown = ', '.join(f'{k} {v:.3f}' for k, v in result['metrics'].items())
        print_log(f'[finetune] {job["name"]}: {shown} ({result["seconds"]} s)', logger='current')


def _cpu_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------- the demo
class Demo:

    def __init__(self, args):
        self.args = args
        self.work_dir = args.work_dir
        self.data_root = args.data_root
        self.log_dir = osp.join(self.work_dir, 'logs')
        os.makedirs(self.log_dir, exist_ok=True)
        self.t0 = time.time()
        self.timings = {}
        self.stage1_ckpts, self.stage2_ckpts = {}, {}

    # ------------------------------------------------------------------ running steps
    def _marker(self, name):
        return osp.join(self.work_dir, 'done', name)

    def check_settings(self):
        """Refuse to resume a work dir whose finished steps were made with other data or schedules."""
        a = self.args
        settings = dict(data_root=osp.abspath(self.data_root), targets=a.targets, train_scenes=a.train_scenes,
                        val_scenes=a.val_scenes, frames_per_scene=a.frames_per_scene,
                        points_per_scene=a.points_per_scene, label_cfg_options=a.label_cfg_options,
                        pretrain_epochs=a.pretrain_epochs, finetune_epochs=a.finetune_epochs)
        path = self._marker('settings.json')
        if osp.isfile(path) and not a.fresh:
            with open(path) as f:
                old = json.load(f)
            changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            if changed:
                sys.exit(f'{self.work_dir} holds a demo made with other settings ('
                         + ', '.join(f'{k}: {o} -> {n}' for k, (o, n) in changed.items())
                         + '); rerun with --fresh, or give another --work-dir')
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(settings, f, indent=1)

    def run(self, name, cmd, title, marker=True):
        """Run one tool (``[python, script, args...]``) as a subprocess, streaming progress lines, or in this
        process with --in-process; skip it when its marker exists (``marker=False``: the tool resumes itself)."""
        marker = self._marker(name) if marker else None
        if marker and osp.exists(marker) and not self.args.fresh:
            self._say(f'{title}: already done (delete {marker} to redo)')
            return
        log_path = osp.join(self.log_dir, f'{name}.log')
        self._say(f'{title} (log: {log_path})')
        start = time.time()
        if self.args.in_process:
            code, cpu = self._run_in_process(cmd, log_path)
        else:
            code, cpu = self._run_subprocess(cmd, log_path)
        self.timings[name] = dict(seconds=round(time.time() - start, 1), cpu_seconds=round(cpu, 1))
        if code != 0:
            with open(log_path) as f:
                tail = f.readlines()[-25:]
            sys.exit(f'demo step "{title}" failed with exit code {code}; last lines of {log_path}:\n'
                     + ''.join(tail))
        if marker:
            os.makedirs(osp.dirname(marker), exist_ok=True)
            with open(marker, 'w') as f:
                json.dump(self.timings[name], f)

    def _run_subprocess(self, cmd, log_path):
        # A fixed hash seed too: set iteration order must not differ between two runs of the demo.
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
                   PYTHONUNBUFFERED='1', PYTHONHASHSEED='0')
        cpu = _cpu_seconds(resource.RUSAGE_CHILDREN)
        with open(log_path, 'w') as log:
            log.write('$ ' + ' '.join(cmd) + '\n')
            proc = subprocess.Popen(cmd, cwd=os.getcwd(), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
            for line in proc.stdout:
                log.write(line)
                if PROGRESS.search(line):
                    text = line.split(' - ', 2)[-1].rstrip()
                    print('    ' + (text if len(text) < 170 else text[:167] + '...'), flush=True)
            code = proc.wait()
        return code, _cpu_seconds(resource.RUSAGE_CHILDREN) - cpu

    def _run_in_process(self, cmd, log_path):
        """``main(argv)`` of the tool in this process (its output goes to this process's stdout)."""
        import importlib.util
        with open(log_path, 'w') as log:
            log.write('$ ' + ' '.join(cmd) + '\n(in process)\n')
        cpu = _cpu_seconds(resource.RUSAGE_SELF)
        script, argv = cmd[1], cmd[2:]
        if script == osp.abspath(__file__):
            finetune_worker(*_worker_args(argv))
            return 0, _cpu_seconds(resource.RUSAGE_SELF) - cpu
        spec = importlib.util.spec_from_file_location(f'_demo_tool_{osp.basename(script)[:-3]}', script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        try:
            code = module.main(argv)
            code = code if isinstance(code, int) else 0  # some tools return their results
        except SystemExit as err:
            code = err.code
            if isinstance(code, str):
                with open(log_path, 'a') as log:
                    log.write(code + '\n')
                code = 1
        return (0 if code in (None, 0) else code), _cpu_seconds(resource.RUSAGE_SELF) - cpu

    def _say(self, text):
        elapsed = time.time() - self.t0
        print(f'[demo {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {text}', flush=True)

    def tool(self, script, *args):
        return [sys.executable, osp.join(ROOT, 'tools', script), *map(str, args)]

    # ------------------------------------------------------------------ the pipeline
    @property
    def label_root(self):
        return osp.join(self.data_root, 'sam_mtp_labels')

    def data_and_labels(self):
        a, root = self.args, self.data_root
        self.run('data', self.tool('make_synthetic_data.py', '--out', root, '--splits',
                                   f'train:{a.train_scenes},val:{a.val_scenes}',
                                   '--frames-per-scene', a.frames_per_scene, '--points-per-scene',
                                   a.points_per_scene, '--seed', 0),
                 '1/6 synthetic ScanNet-format scenes and posed RGB-D frames')
        self.labels()

    def labels(self):
        """Offline labels of both splits and the scene segments of both splits (the one place that names the
        label and segment commands)."""
        root, labels = self.data_root, self.label_root
        config, what = TARGETS[self.args.targets]
        common = ['--frames-root', osp.join(root, 'posed_images'), '--out-dir', labels,
                  '--axis-align-root', osp.join(root, 'scans'), '--no-progress']
        if self.args.label_cfg_options:
            common += ['--cfg-options', *self.args.label_cfg_options]
        self.run('labels_train', self.tool(
            'generate_sam_labels.py', config, '--split', 'train',
            '--split-file', osp.join(root, 'meta_data', 'scannetv2_train.txt'), *common),
            f'2/6 labels, train (STAND-IN masks: instance images; {what.split(" (")[0]})')
        # Val frames reuse train's K-means groups; their scene segments feed SAM-guided tokens at test time.
        self.run('labels_val', self.tool(
            'generate_sam_labels.py', config, '--split', 'val',
            '--split-file', osp.join(root, 'meta_data', 'scannetv2_val.txt'),
            '--groups-from', osp.join(labels, 'train_groups.json'), *common),
            '2/6 labels, val')
        # Scene segments of the train and val scenes from the labels' region maps: SAM-guided tokens in fine-tuning.
        self.run('segments', self.tool(
            'make_scene_segments.py', osp.join(CONFIGS, 'segments', 'demo_scannet_stand_in.py'), '--data-root', root,
            '--info', osp.join(root, 'scannet_infos_train.pkl'), osp.join(root, 'scannet_infos_val.pkl'),
            '--frames-root', osp.join(root, 'posed_images'), '--labels-dir', labels, '--no-progress'),
            '2/6 scene segments (multi-view merge of the labels\' region maps), train + val')

    def _pretrain_options(self, seed):
        options = [f'randomness.seed={seed}', f'train_dataloader.dataset.data_root={self.label_root}/']
        epochs = self.args.pretrain_epochs
        if epochs is not None:  # the cosine schedule follows the epochs (one warm-up epoch, as the configs)
            options += [f'train_cfg.max_epochs={epochs}', f'param_scheduler.1.T_max={epochs - 1}',
                        f'param_scheduler.1.end={epochs}', f'default_hooks.checkpoint.interval={epochs}']
        return options

    def pretrain(self):
        for seed in self.args.seeds:
            stage1_dir = osp.join(self.work_dir, 'pretrain', f'seed{seed}', 'stage1')
            self.run(f'stage1_seed{seed}', self.tool(
                'train.py', STAGE1_CONFIG, '--work-dir', stage1_dir,
                '--cfg-options', *self._pretrain_options(seed)),
                f'3/6 seed {seed} stage 1: SAM-guided tokens -> transformer -> group-balanced region distillation')
            self.stage1_ckpts[seed] = self._last_checkpoint(stage1_dir)
            stage2_dir = osp.join(self.work_dir, 'pretrain', f'seed{seed}', 'stage2')
            self.run(f'stage2_seed{seed}', self.tool(
                'train.py', STAGE2_CONFIG, '--work-dir', stage2_dir,
                '--cfg-options', f'model.teacher_checkpoint={self.stage1_ckpts[seed]}',
                *self._pretrain_options(seed)),
                f'3/6 seed {seed} stage 2: masked token prediction from the frozen stage-1 teacher')
            self.stage2_ckpts[seed] = self._last_checkpoint(stage2_dir)

    def _data_options(self):
        root = self.data_root.rstrip('/') + '/'
        return [f'train_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}']

    def probe(self):
        seeds = self.args.seeds
        checkpoints = [self.stage1_ckpts[s] for s in seeds] + [self.stage2_ckpts[s] for s in seeds]
        self.run('probe_seeds' + '_'.join(map(str, seeds)),
                 self.tool('linear_probe.py', PROBE_CONFIG, *checkpoints, '--random-init', *seeds,
                           '--out', self._probe_file(), '--cfg-options', *self._data_options()),
                 f'4/6 linear probe of per-point semantics on frozen token features: random-init, stage-1 and '
                 f'stage-2 encoders of seeds {seeds}')

    def _probe_file(self):
        return osp.join(self.work_dir, 'probe', 'probe_' + '_'.join(map(str, self.args.seeds)) + '.json')

    def finetune(self):
        a = self.args
        jobs = finetune_jobs(a, self.stage2_ckpts)
        todo = [j for j in jobs if a.fresh or not osp.isfile(osp.join(self.work_dir, 'finetune', j['name'],
                                                                       'result.json'))]
        title = (f'5/6 fine-tuning {len(jobs)} runs ({", ".join(a.tasks)} on all training scenes'
                 + (f'; {a.label_task} on {", ".join(f"{f:.0%}" for f in a.label_fractions)} of them'
                    if a.label_fractions else '') + f'), pretrained vs scratch, seeds {a.seeds}')
        if not todo:
            self._say(f'{title}: already done')
            return
        jobs_file = osp.join(self.work_dir, 'finetune', 'jobs.json')
        os.makedirs(osp.dirname(jobs_file), exist_ok=True)
        with open(jobs_file, 'w') as f:
            json.dump(todo, f, indent=1)
        # No marker: the worker skips runs whose result.json exists, so new seeds or fractions add runs.
        self.run('finetune', [sys.executable, osp.abspath(__file__), '--finetune-worker', jobs_file,
                              '--work-dir', self.work_dir, '--data-root', self.data_root,
                              '--finetune-epochs', str(a.finetune_epochs)] + (['--fresh'] if a.fresh else []),
                 title, marker=False)

    # ------------------------------------------------------------------ report
    def report(self):
        from projects.sam_mtp.engine import report
        a = self.args
        self._say('6/6 report')
        jobs = finetune_jobs(a, self.stage2_ckpts)
        runs = []
        for job in jobs:
            with open(osp.join(self.work_dir, 'finetune', job['name'], 'result.json')) as f:
                result = json.load(f)
            result.pop('checkpoint', None)
            runs.append(result)
        probe_runs = self._probe_runs()
        comparisons = report.paired_comparisons(runs, REPORT_METRICS)
        probe_comparisons = (report.paired_comparisons(probe_runs, REPORT_METRICS, a='stage2', b='random-init') +
                             report.paired_comparisons(probe_runs, REPORT_METRICS, a='stage1', b='random-init'))
        probe_summary = {init: {m: report.t_interval([r['metrics'][m] for r in probe_runs if r['init'] == init])
                                for m in REPORT_METRICS['probe']}
                         for init in ('random-init', 'stage1', 'stage2')}
        curves = {}
        for seed in a.seeds:
            for stage in ('stage1', 'stage2'):
                log = report.find_log(osp.join(self.work_dir, 'pretrain', f'seed{seed}', stage))
                if log:
                    curves[f'{stage} seed {seed}'] = report.parse_train_losses(log)
        pictures = dict(loss_curves=osp.join(self.work_dir, 'loss_curves.png'),
                        tokens_and_features=osp.join(self.work_dir, 'tokens_and_features.png'))
        report.plot_loss_curves({k: v for k, v in curves.items() if k.endswith(f'seed {a.seeds[0]}')},
                                pictures['loss_curves'])
        self._token_pictures(pictures['tokens_and_features'])
        label_metric = REPORT_METRICS[a.label_task][0]
        label_rows = [c for c in comparisons if c['task'] == a.label_task and c['metric'] == label_metric]
        if a.label_fractions and len({c['fraction'] for c in label_rows}) > 1:
            pictures['label_efficiency'] = osp.join(self.work_dir, 'label_efficiency.png')
            report.plot_label_efficiency(comparisons, a.label_task, label_metric, pictures['label_efficiency'])
        summary = dict(
            schema=2,
            note=('Synthetic scenes and STAND-IN labels (instance images as SAM masks; '
                  + TARGETS[a.targets][1] + '): the numbers show the pipeline and the effect of pretraining at '
                  'demo scale, not ScanNet results.'),
            environment=environment(),
            settings=dict(targets=a.targets, label_config=osp.relpath(TARGETS[a.targets][0], ROOT), seeds=a.seeds,
                          tasks=a.tasks,
                          label_task=a.label_task, label_fractions=a.label_fractions, train_scenes=a.train_scenes,
                          val_scenes=a.val_scenes, frames_per_scene=a.frames_per_scene,
                          points_per_scene=a.points_per_scene, label_cfg_options=a.label_cfg_options,
                          stage1_epochs=a.pretrain_epochs or _config_value('demo_stage1_epochs'),
                          stage2_epochs=a.pretrain_epochs or _config_value('demo_max_epochs'),
                          finetune_epochs=a.finetune_epochs, metrics=REPORT_METRICS, confidence=0.95,
                          command=' '.join([osp.relpath(sys.argv[0]) if sys.argv[0] else 'tools/demo.py']
                                           + sys.argv[1:])),
            comparisons=comparisons,
            probe=dict(runs=probe_runs, summary=probe_summary, comparisons=probe_comparisons),
            runs=runs,
            pretraining={k: {n: [v[0], v[-1]] for n, v in c.items() if n != 'iter' and v} for k, c in curves.items()},
            timings_s=self._all_timings(runs),
            total_minutes=round((time.time() - self.t0) / 60, 2),
            pictures=pictures)
        from projects.sam_mtp.labels.fileio import atomic_write
        atomic_write(osp.join(self.work_dir, 'report.json'),
                     lambda f: f.write(json.dumps(summary, indent=1).encode()))
        markdown = report_markdown(summary)
        atomic_write(osp.join(self.work_dir, 'report.md'), lambda f: f.write(markdown.encode()))
        print('\n' + markdown)
        self._say(f'done: {osp.join(self.work_dir, "report.md")} (this invocation {summary["total_minutes"]} min)')
        return summary

    def _probe_runs(self):
        with open(self._probe_file()) as f:
            results = json.load(f)
        by_path = {p: ('stage1', s) for s, p in self.stage1_ckpts.items()}
        by_path.update({p: ('stage2', s) for s, p in self.stage2_ckpts.items()})
        runs = []
        for r in results:
            init, seed = ('random-init', r['seed']) if r['encoder'] == 'random-init' else by_path[r['encoder']]
            runs.append(dict(task='probe', init=init, seed=seed, fraction=1.0,
                             metrics={k: r[k] for k in ('miou', 'acc', 'acc_cls')},
                             coverage=r['coverage'], train_tokens=r['train_tokens'], test_points=r['test_points']))
        return runs

    def _all_timings(self, runs):
        """Wall and CPU seconds of every step: this invocation's, or the ones the markers recorded."""
        timings = {}
        for path in sorted(glob.glob(self._marker('*'))):
            name = osp.basename(path)
            if name == 'settings.json':
                continue
            try:
                with open(path) as f:
                    timings[name] = json.load(f)
            except ValueError:
                continue
        timings.update(self.timings)
        timings.pop('finetune', None)
        timings['finetune_runs'] = dict(seconds=round(sum(r['seconds'] for r in runs), 1),
                                        cpu_seconds=round(sum(r.get('cpu_seconds', 0) for r in runs), 1))
        return timings

    def _token_pictures(self, out_png):
        """One val frame: its points coloured by SAM-guided token and by a PCA of stage-2 vs random features."""
        import torch
        from mmdet3d.registry import MODELS
        from mmengine.config import Config
        from mmengine.runner.checkpoint import _load_checkpoint_with_prefix

        import projects.sam_mtp  # noqa: F401
        from projects.sam_mtp.engine import report
        from projects.sam_mtp.labels.formats.frame_labels import load_frame_labels, load_label_info
        info = load_label_info(osp.join(self.label_root, 'val_labels.pkl'))
        item = max(info['data_list'], key=lambda d: d['num_regions'])
        frame = load_frame_labels(osp.join(self.label_root, item['label_path']))
        cfg = Config.fromfile(STAGE2_CONFIG)
        points = torch.from_numpy(frame['points'])[None]
        region = torch.from_numpy(frame['point_region']).long()[None]
        token_rgb = {}
        seed = self.args.seeds[0]
        for name, ckpt in ((f'stage-2 (seed {seed})', self.stage2_ckpts[seed]), ('random-init', None)):
            torch.manual_seed(0)
            tokenizer, backbone = MODELS.build(cfg.model.tokenizer).eval(), MODELS.build(cfg.model.backbone).eval()
            if ckpt:
                backbone.load_state_dict(_load_checkpoint_with_prefix('backbone.', ckpt, map_location='cpu'))
            with torch.no_grad():
                tokens = tokenizer(points - points.mean(1, keepdim=True), region)
                feats = backbone(tokens)[0][~tokens.padding_mask[0]].numpy()
            token_rgb[name] = report.pca_colors(feats)
        report.plot_token_pictures(frame['points'], frame['colors'].astype(float), tokens.point_token[0].numpy(),
                                   token_rgb, out_png, title=f'{item["scene_id"]} frame {item["frame_id"]}')

    @staticmethod
    def _last_checkpoint(work_dir):
        pointer = osp.join(work_dir, 'last_checkpoint')
        if not osp.isfile(pointer):
            sys.exit(f'{work_dir}: no last_checkpoint file; did training finish?')
        with open(pointer) as f:
            return f.read().strip()


def _config_value(name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(CONFIGS, '_base_', 'demo_scale.py'))[name]


def environment():
    """Where and with what the report was made: date, machine, commit, library versions."""
    import mmdet3d
    import mmengine
    import torch

    from projects.sam_mtp.engine.provenance import cpu_model, git_commit, memory_gib
    commit, dirty = git_commit(where=ROOT)
    return dict(date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                machine=dict(cpu=cpu_model(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                             omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                             memory_gib=memory_gib(), platform=platform.platform(), python=platform.python_version()),
                commit=commit, dirty=dirty,
                versions=dict(torch=torch.__version__, mmengine=mmengine.__version__, mmdet3d=mmdet3d.__version__))


def report_markdown(summary):
    """report.md: the paired comparison, the label-efficiency table, the probe and the per-seed values."""
    from projects.sam_mtp.engine import report
    s = summary['settings']
    level = f'{s["confidence"]:.0%}'
    lines = [f'# sam_mtp demo: pretrained (stage 2) vs scratch ({s["targets"]} targets)', '', summary['note'], '',
             f'{len(s["seeds"])} pairs (seeds {s["seeds"]}); pair s fine-tunes seed s\'s own stage-1 + stage-2 '
             'pretraining and a scratch encoder with the same fine-tuning seed. Differences are pretrained - '
             f'scratch per pair; the {level} interval is Student-t over the pairs, so it includes the variance of '
             'pretraining, fine-tuning and the subset of scenes.', '',
             '## Fine-tuning on all training scenes', '',
             report.comparison_table(summary['comparisons'], 1.0)]
    label_rows = [c for c in summary['comparisons'] if c['task'] == s['label_task']]
    if s['label_fractions']:
        lines += ['## Label efficiency', '', f'{s["label_task"]} fine-tuned on a seeded subset of the training '
                  'scenes (the same subset for both runs of a pair, repeated to the same number of iterations).',
                  '', report.comparison_table(label_rows)]
    probe = summary['probe']
    lines += ['## Frozen-feature linear probe (per-point semantics)', '', report.probe_table(probe),
              report.comparison_table(probe['comparisons'])]
    lines += ['## Reading', ''] + ['- ' + t for t in report.reading(summary['comparisons'] + probe['comparisons'])]
    lines.append('')
    metrics = dict(s['metrics'])
    lines += ['## Every run', '', report.markdown_table(report.summarize_runs(summary['runs'], sorted(
        {m for ms in metrics.values() for m in ms})), metrics)]
    lines += ['Pictures: ' + ', '.join(summary['pictures'].values()), '']
    return '\n'.join(lines)


def _worker_args(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument('--finetune-worker')
    parser.add_argument('--work-dir')
    parser.add_argument('--data-root')
    parser.add_argument('--finetune-epochs', type=int)
    parser.add_argument('--fresh', action='store_true')
    args = parser.parse_args(argv)
    return args.finetune_worker, args.work_dir, args.data_root, args.finetune_epochs, args.fresh


def main(argv=None):
    args = parse_args(argv)
    if args.finetune_worker:
        return finetune_worker(args.finetune_worker, args.work_dir, args.data_root, args.finetune_epochs,
                               args.fresh)
    demo = Demo(args)
    demo.check_settings()
    demo.data_and_labels()
    demo.pretrain()
    demo.probe()
    demo.finetune()
    return demo.report()


if __name__ == '__main__':
    main()
