"""The demo's pipeline (``tools/demo.py`` is its command line): every step runs the command-line tool a user
runs, as a subprocess (or in this process for tests), with its log in ``<work-dir>/logs/``; a finished step
leaves a marker in ``<work-dir>/done/`` and is skipped on the next run.

Steps:
  1. synthetic ScanNet-format scenes + posed RGB-D frames            tools/make_synthetic_data.py
  2. offline labels with STAND-IN sources                            tools/generate_sam_labels.py
     and the scene segments of both splits                           tools/make_scene_segments.py
  3. for every seed: stage 1 (region distillation) and stage 2 (masked token prediction), and the steps of
     every other method (:mod:`.methods`)                            tools/train.py
  4. frozen-feature linear probe of per-point semantics               tools/linear_probe.py
  5. fine-tuning, every method and scratch in pairs                   :mod:`.finetune` (one worker process)
  6. report: <work-dir>/report.{md,json} and pictures                 :mod:`.report`, :mod:`.plots`
"""
import glob
import json
import os
import os.path as osp
import re
import resource
import subprocess
import sys
import time

from . import report
from .finetune import cpu_seconds, finetune_jobs
from .methods import METHODS, REFERENCE, STEPS, pretrain_steps
from .settings import CONFIGS, DEMO_CONFIGS, PROBE_CONFIG, REPO_ROOT, REPORT_METRICS, TARGETS, TEXT_LABELS, DemoSettings

# Lines of a tool's output that are worth showing live; everything goes to the step's log file.
PROGRESS = re.compile(r'mmengine - (INFO|WARNING|ERROR) - (Epoch\(train\).*\]\[\s*(\d+)/\3\]|wrote|merged|'
                      r'shard|scene\d+_\d+: \d+ segments|\[finetune\]|\[probe\])|Error')
FINETUNE_WORKER = 'projects.sam_mtp.demo.finetune'
# The probe's paired comparisons (a - b per seed).
PROBE_PAIRS = (('stage2', 'random-init'), ('stage1', 'random-init'), ('stage2', 'stage1'))


class Demo:
    """One demo run in ``settings.work_dir``: call the steps in order (:func:`run_demo`), or any finished prefix of
    them again (they resume)."""

    def __init__(self, settings: DemoSettings):
        self.args = settings.check()
        self.work_dir = settings.work_dir
        self.data_root = settings.data_root
        self.log_dir = osp.join(self.work_dir, 'logs')
        os.makedirs(self.log_dir, exist_ok=True)
        self.t0 = time.time()
        self.timings = {}
        self.checkpoints = {}  # (pretraining step, seed) -> checkpoint

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
        """Run one tool (``[python, script, args...]`` or ``[python, '-m', module, args...]``) as a subprocess,
        streaming progress lines, or in this process with ``in_process``; skip it when its marker exists
        (``marker=False``: the tool resumes itself)."""
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
        env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
                   PYTHONUNBUFFERED='1', PYTHONHASHSEED='0')
        cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
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
        return code, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu

    def _run_in_process(self, cmd, log_path):
        """``main(argv)`` of the tool (or of the ``-m`` module) in this process (its output goes to this
        process's stdout)."""
        import importlib
        import importlib.util
        with open(log_path, 'w') as log:
            log.write('$ ' + ' '.join(cmd) + '\n(in process)\n')
        cpu = cpu_seconds(resource.RUSAGE_SELF)
        if cmd[1] == '-m':
            module, argv = importlib.import_module(cmd[2]), cmd[3:]
        else:
            script, argv = cmd[1], cmd[2:]
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
        return (0 if code in (None, 0) else code), cpu_seconds(resource.RUSAGE_SELF) - cpu

    def _say(self, text):
        elapsed = time.time() - self.t0
        print(f'[demo {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {text}', flush=True)

    @staticmethod
    def tool(script, *args):
        return [sys.executable, osp.join(REPO_ROOT, 'tools', script), *map(str, args)]

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

    def text_labels(self):
        """Bridge3D's text targets (region classes, text features of class names and captions) added to the train
        labels, which Bridge3D pretraining reads; the other methods ignore them."""
        config, what = TEXT_LABELS
        self.run('text_labels_train', self.tool(
            'add_text_labels.py', config, '--labels-root', self.label_root, '--split', 'train',
            '--frames-root', osp.join(self.data_root, 'posed_images')),
            f'2/6 Bridge3D text targets, train ({what})')

    def pretrain_options(self, seed):
        options = [f'randomness.seed={seed}', f'train_dataloader.dataset.data_root={self.label_root}/']
        epochs = self.args.pretrain_epochs
        if epochs is not None:  # the cosine schedule follows the epochs (one warm-up epoch, as the configs)
            options += [f'train_cfg.max_epochs={epochs}', f'param_scheduler.1.T_max={epochs - 1}',
                        f'param_scheduler.1.end={epochs}', f'default_hooks.checkpoint.interval={epochs}']
        return options

    def pretrain(self):
        """Every step of every method (demo.methods), per seed, a teacher before its students; a step shared by
        several methods runs once."""
        steps = pretrain_steps(self.args.methods)
        if any(STEPS[name].text_labels for name in steps):
            self.text_labels()
        for seed in self.args.seeds:
            for name in steps:
                step = STEPS[name]
                work_dir = osp.join(self.work_dir, 'pretrain', f'seed{seed}', name)
                teacher = ([f'model.teacher_checkpoint={self.checkpoints[(step.teacher, seed)]}']
                           if step.teacher else [])
                self.run(f'{name}_seed{seed}', self.tool(
                    'train.py', step.config, '--work-dir', work_dir, '--cfg-options', *teacher,
                    *self.pretrain_options(seed)), f'3/6 seed {seed} {step.what}')
                self.checkpoints[(name, seed)] = self.last_checkpoint(work_dir)

    def step_checkpoints(self, step):
        """{seed: checkpoint} of one pretraining step (after :meth:`pretrain`)."""
        return {seed: self.checkpoints[(step, seed)] for seed in self.args.seeds}

    @property
    def stage1_ckpts(self):
        return self.step_checkpoints('stage1')

    @property
    def stage2_ckpts(self):
        return self.step_checkpoints('stage2')

    def _data_options(self):
        root = self.data_root.rstrip('/') + '/'
        return [f'train_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}']

    def _probe_encoders(self):
        """(probe label, pretraining step) of every encoder the probe reads besides random init: SAM-MTP's stage 1
        and stage 2, then every other method's encoder (once per checkpoint)."""
        encoders = {'stage1': 'stage1', 'stage2': 'stage2'}  # the "stage1" method's label is SAM-MTP's stage 1
        for name in self.args.methods:
            encoders.setdefault(METHODS[name].probe_label, METHODS[name].encoder_step)
        return encoders

    def _methods_tag(self):
        others = [m for m in self.args.methods if m != REFERENCE]
        return '_'.join(others)

    def probe(self):
        seeds = self.args.seeds
        encoders = self._probe_encoders()
        checkpoints = [self.checkpoints[(step, s)] for step in encoders.values() for s in seeds]
        tag = self._methods_tag()
        self.run('probe_seeds' + '_'.join(map(str, seeds)) + (f'_{tag}' if tag else ''),
                 self.tool('linear_probe.py', PROBE_CONFIG, *checkpoints, '--random-init', *seeds,
                           '--out', self._probe_file(), '--cfg-options', *self._data_options()),
                 f'4/6 linear probe of per-point semantics on frozen token features: random-init, '
                 f'{", ".join(encoders)} encoders of seeds {seeds}')

    def _probe_file(self):
        tag = self._methods_tag()
        return osp.join(self.work_dir, 'probe', 'probe_' + '_'.join(map(str, self.args.seeds))
                        + (f'_{tag}' if tag else '') + '.json')

    def _finetune_jobs(self):
        a = self.args
        encoders = {METHODS[m].finetune_label: self.step_checkpoints(METHODS[m].encoder_step) for m in a.methods}
        return finetune_jobs(a.tasks, a.label_task, a.label_fractions, a.seeds, encoders)

    def finetune(self):
        a = self.args
        jobs = self._finetune_jobs()
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
        self.run('finetune', [sys.executable, '-m', FINETUNE_WORKER, jobs_file, '--work-dir', self.work_dir,
                              '--data-root', self.data_root, '--finetune-epochs', str(a.finetune_epochs)]
                 + (['--fresh'] if a.fresh else []), title, marker=False)

    # ------------------------------------------------------------------ report
    def report(self):
        from . import plots
        a = self.args
        self._say('6/6 report')
        runs = []
        for job in self._finetune_jobs():
            with open(osp.join(self.work_dir, 'finetune', job['name'], 'result.json')) as f:
                result = json.load(f)
            result.pop('checkpoint', None)
            runs.append(result)
        probe_runs = self._probe_runs()
        comparisons = [c for a, b in self._finetune_pairs()
                       for c in report.paired_comparisons(runs, REPORT_METRICS, a=a, b=b)]
        probe_comparisons = [c for a, b in self._probe_pairs()
                             for c in report.paired_comparisons(probe_runs, REPORT_METRICS, a=a, b=b)]
        probe_summary = {init: {m: report.t_interval([r['metrics'][m] for r in probe_runs if r['init'] == init])
                                for m in REPORT_METRICS['probe']}
                         for init in ['random-init'] + list(self._probe_encoders())}
        curves = {}
        for seed in a.seeds:
            for stage in pretrain_steps(a.methods):
                log = report.find_log(osp.join(self.work_dir, 'pretrain', f'seed{seed}', stage))
                if log:
                    curves[f'{stage} seed {seed}'] = report.parse_train_losses(log)
        pictures = dict(loss_curves=osp.join(self.work_dir, 'loss_curves.png'),
                        tokens_and_features=osp.join(self.work_dir, 'tokens_and_features.png'))
        plots.plot_loss_curves({k: v for k, v in curves.items() if k.endswith(f'seed {a.seeds[0]}')
                                and k.split(' seed ')[0] in ('stage1', 'stage2')}, pictures['loss_curves'])
        seed = a.seeds[0]
        stage2_config = osp.join(DEMO_CONFIGS, 'sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py')
        plots.draw_token_pictures(self.label_root, stage2_config, self.stage2_ckpts[seed],
                                  f'stage-2 (seed {seed})', pictures['tokens_and_features'])
        label_metric = REPORT_METRICS[a.label_task][0]
        label_rows = [c for c in comparisons if c['task'] == a.label_task and c['metric'] == label_metric]
        if a.label_fractions and len({c['fraction'] for c in label_rows}) > 1:
            pictures['label_efficiency'] = osp.join(self.work_dir, 'label_efficiency.png')
            plots.plot_label_efficiency(comparisons, a.label_task, label_metric, pictures['label_efficiency'])
        summary = dict(
            schema=2,
            note=('Synthetic scenes and STAND-IN labels (instance images as SAM masks; '
                  + TARGETS[a.targets][1] + '): the numbers show the pipeline and the effect of pretraining at '
                  'demo scale, not ScanNet results.'),
            environment=report.environment(REPO_ROOT),
            settings=dict(targets=a.targets, label_config=osp.relpath(TARGETS[a.targets][0], REPO_ROOT),
                          seeds=a.seeds, tasks=a.tasks,
                          label_task=a.label_task, label_fractions=a.label_fractions, train_scenes=a.train_scenes,
                          val_scenes=a.val_scenes, frames_per_scene=a.frames_per_scene,
                          points_per_scene=a.points_per_scene, label_cfg_options=a.label_cfg_options,
                          stage1_epochs=a.pretrain_epochs or _config_value('demo_stage1_epochs'),
                          stage2_epochs=a.pretrain_epochs or _config_value('demo_max_epochs'),
                          finetune_epochs=a.finetune_epochs, metrics=REPORT_METRICS, confidence=0.95,
                          methods=a.methods,
                          command=' '.join([osp.relpath(sys.argv[0]) if sys.argv[0] else 'tools/demo.py']
                                           + sys.argv[1:])),
            methods={m: dict(paper=METHODS[m].paper, finetune_label=METHODS[m].finetune_label,
                             probe_label=METHODS[m].probe_label,
                             configs=[osp.relpath(STEPS[st].config, REPO_ROOT)
                                      for st in pretrain_steps([m])]) for m in a.methods},
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
        markdown = report.report_markdown(summary)
        atomic_write(osp.join(self.work_dir, 'report.md'), lambda f: f.write(markdown.encode()))
        print('\n' + markdown)
        self._say(f'done: {osp.join(self.work_dir, "report.md")} (this invocation {summary["total_minutes"]} min)')
        return summary

    def _finetune_pairs(self):
        """(a, b) of the fine-tuning comparisons: SAM-MTP vs scratch, then every other method vs scratch and vs
        SAM-MTP."""
        reference = METHODS[REFERENCE].finetune_label
        pairs = [(reference, 'scratch')]
        for name in self.args.methods:
            label = METHODS[name].finetune_label
            if name != REFERENCE:
                pairs += [(label, 'scratch'), (label, reference)]
        return pairs

    def _probe_pairs(self):
        """(a, b) of the probe comparisons: stage 2 and stage 1 vs random init, stage 2 vs stage 1 (the paper's
        Table 4 claim, and what stage 2 adds to its own teacher), then every other method vs random init and vs
        SAM-MTP's stage 2."""
        pairs = list(PROBE_PAIRS)
        for label in self._probe_encoders():
            if label not in ('stage1', 'stage2'):
                pairs += [(label, 'random-init'), (label, 'stage2')]
        return pairs

    def _probe_runs(self):
        with open(self._probe_file()) as f:
            results = json.load(f)
        by_path = {self.checkpoints[(step, s)]: (label, s)
                   for label, step in self._probe_encoders().items() for s in self.args.seeds}
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

    @staticmethod
    def last_checkpoint(work_dir):
        pointer = osp.join(work_dir, 'last_checkpoint')
        if not osp.isfile(pointer):
            sys.exit(f'{work_dir}: no last_checkpoint file; did training finish?')
        with open(pointer) as f:
            return f.read().strip()


def _config_value(name):
    from mmengine.config import Config
    return Config.fromfile(osp.join(CONFIGS, '_base_', 'demo_scale.py'))[name]


def run_demo(settings: DemoSettings) -> dict:
    """Every step of the demo in order (finished ones are skipped); returns report.json's content."""
    demo = Demo(settings)
    demo.check_settings()
    demo.data_and_labels()
    demo.pretrain()
    demo.probe()
    demo.finetune()
    return demo.report()
