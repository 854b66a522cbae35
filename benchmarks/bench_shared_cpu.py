"""How much a stage-1 training run slows down when other processes share the cores: before and after the tools'
thread settings (projects/sam_mtp/engine/cpu_threads.py, issue 20 item 11).

    python benchmarks/bench_shared_cpu.py [--iters 6] [--repeats 3] [--busy 2] \
        [--out work_dirs/benchmarks/shared_cpu.json]

The demo's stage-1 config (configs/sam_mtp/demo/sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py)
trains on a small data set that the project's tools make (tools/make_synthetic_data.py, tools/generate_sam_labels.py
with the demo's class-embedding stand-in targets; made once and kept in --data-dir). Each run is one process (libgomp
reads its settings when torch loads) that trains through mmengine's Runner and times every iteration, as mmengine's
IterTimerHook does (data included):
a warm-up, then ``--repeats`` times ``--iters`` iterations on a quiet machine followed by ``--iters`` under a fixed
background load: ``--busy`` busy-loop processes at ``nice -n 19``, started and killed by the run. They run in a
session of their own, as another user's jobs would: Linux's autogroup scheduling then gives their session its
fair share whatever their nice value, which is how a few ``nice 19`` jobs take half of a 2-core machine.

Settings: ``before`` is the environment without the tools' defaults (OpenMP's spin-then-sleep waiting, as every
tool ran before), ``after`` applies them (``set_thread_env_defaults``). Runs alternate before / after; their loss
sequences must be bit-identical. The figure of merit is the ratio loaded / quiet of the median iteration times of
each repeat: a job that loses half the CPU to the load should take about twice as long, not many times. On a
machine shared with other work the absolute times are noisy; the ratios, taken minutes apart, less so.
"""
import argparse
import json
import os
import os.path as osp
import runpy
import shutil
import statistics
import subprocess
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, HERE)  # docs_tables

from docs_tables import atomic_write_text, finish_stamp, run_stamp, stamp_line  # noqa: E402

STAGE1_CONFIG = osp.join(ROOT, 'configs', 'sam_mtp', 'demo',
                         'sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py')
LABEL_CONFIG = osp.join(ROOT, 'configs', 'sam_mtp', 'labels', 'demo_class_targets.py')
THREADS_MODULE = osp.join(ROOT, 'projects', 'sam_mtp', 'engine', 'cpu_threads.py')
SETTINGS = ('before', 'after')
BUSY_LOOP = 'while True: pass'


# ----------------------------------------------------------------------------------------- data (made once)
def ensure_data(data_dir, scenes, frames, points, env):
    """Synthetic scenes and stand-in labels in ``data_dir`` (remade when the sizes differ); returns the label root."""
    wanted = dict(scenes=scenes, frames=frames, points=points)
    marker = osp.join(data_dir, 'bench_data.json')
    labels = osp.join(data_dir, 'scannet', 'sam_mtp_labels')
    if osp.isfile(marker):
        with open(marker) as f:
            if json.load(f) == wanted:
                return labels
    shutil.rmtree(data_dir, ignore_errors=True)
    root = osp.join(data_dir, 'scannet')
    steps = [
        [osp.join(ROOT, 'tools', 'make_synthetic_data.py'), '--out', root, '--splits', f'train:{scenes}',
         '--frames-per-scene', str(frames), '--points-per-scene', str(points), '--seed', '0'],
        [osp.join(ROOT, 'tools', 'generate_sam_labels.py'), LABEL_CONFIG, '--split', 'train',
         '--split-file', osp.join(root, 'meta_data', 'scannetv2_train.txt'),
         '--frames-root', osp.join(root, 'posed_images'), '--out-dir', labels,
         '--axis-align-root', osp.join(root, 'scans'), '--no-progress', '--cfg-options', 'label_cfg.num_groups=8'],
    ]
    for cmd in steps:
        print(f'data: {osp.basename(cmd[0])}', flush=True)
        out = subprocess.run([sys.executable, *cmd], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f'error: {osp.basename(cmd[0])} failed (exit {out.returncode}):\n{out.stdout[-2000:]}'
                     f'{out.stderr[-2000:]}')
    with open(marker, 'w') as f:
        json.dump(wanted, f)
    return labels


# ----------------------------------------------------------------------------------------- one run (worker)
class BackgroundLoad:
    """``count`` busy-loop processes at nice 19, each in a session of its own."""

    def __init__(self, count):
        self.count, self.procs = count, []

    def start(self):
        self.procs = [subprocess.Popen(['nice', '-n', '19', sys.executable, '-c', BUSY_LOOP], start_new_session=True)
                      for _ in range(self.count)]

    def stop(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.procs = []


def phase_schedule(warmup, iters, repeats):
    """The phase of every iteration: ``warmup`` x 'warmup', then per repeat ``iters`` x 'quiet', ``iters`` x
    'loaded'."""
    return ['warmup'] * warmup + [p for _ in range(repeats) for p in ['quiet'] * iters + ['loaded'] * iters]


def run_worker(args):
    """Train stage 1 for the schedule's iterations, switching the load between phases; print the JSON result."""
    if args.worker == 'after':
        runpy.run_path(THREADS_MODULE)['set_thread_env_defaults']()
    # (the parent removed any wait setting from both settings' environment)
    import torch
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    import projects.sam_mtp  # noqa: F401
    schedule = phase_schedule(args.warmup, args.iters, args.repeats)
    load = BackgroundLoad(args.busy)
    records = []

    class PhaseTimer(Hook):
        """Iteration times as IterTimerHook measures them (end of one iteration to the end of the next), the CPU
        seconds of all of this process's threads in that span, the losses, and the load switched on / off between
        phases (outside the timed span)."""
        priority = 'LOWEST'

        def __init__(self):
            self.last = self.last_cpu = None

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            it = runner.iter  # not yet advanced: the index of the iteration that just ran
            now, now_cpu = time.perf_counter(), time.process_time()
            records.append(dict(phase=schedule[it], seconds=None if self.last is None else now - self.last,
                                cpu_seconds=None if self.last is None else now_cpu - self.last_cpu,
                                losses={k: float(v) for k, v in (outputs or {}).items()}))
            following = schedule[it + 1] if it + 1 < len(schedule) else None
            if following != schedule[it]:
                if following == 'loaded':
                    load.start()
                    time.sleep(args.settle)
                elif schedule[it] == 'loaded':
                    load.stop()
                    time.sleep(args.settle)
            if it + 1 == len(schedule):
                raise _Done
            self.last, self.last_cpu = time.perf_counter(), time.process_time()

    cfg = Config.fromfile(STAGE1_CONFIG)
    cfg.work_dir = args.work_dir
    cfg.train_dataloader.dataset.data_root = args.labels.rstrip('/') + '/'
    batches_per_epoch = -(-args.frames_total // cfg.train_dataloader.batch_size)
    cfg.train_cfg.max_epochs = -(-len(schedule) // batches_per_epoch)
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1000
    cfg.experiment_name = f'shared_cpu_{args.worker}_{os.getpid()}'
    runner = Runner.from_cfg(cfg)
    runner.register_hook(PhaseTimer(), priority='LOWEST')
    try:
        runner.train()
    except _Done:
        pass
    finally:
        load.stop()
    numba_pool = None
    if 'numba' in sys.modules:
        from numba.np.ufunc import parallel
        numba_pool = bool(getattr(parallel, '_is_initialized', False))
    print(json.dumps(dict(setting=args.worker, omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                          torch_threads=torch.get_num_threads(), numba_thread_pool_started=numba_pool,
                          iterations=records)))


class _Done(Exception):
    pass


# ----------------------------------------------------------------------------------------- the benchmark
def summarize(result, repeats):
    """Per repeat of one run: the median quiet and loaded iteration seconds and their ratio, and the median CPU
    seconds (all threads) of a loaded iteration."""
    its = [r for r in result['iterations'] if r['phase'] != 'warmup' and r['seconds'] is not None]
    per = len(its) // (2 * repeats)
    rows = []
    for k in range(repeats):
        chunk = its[2 * k * per:2 * (k + 1) * per]
        quiet = statistics.median(r['seconds'] for r in chunk if r['phase'] == 'quiet')
        loaded = statistics.median(r['seconds'] for r in chunk if r['phase'] == 'loaded')
        loaded_cpu = statistics.median(r['cpu_seconds'] for r in chunk if r['phase'] == 'loaded')
        rows.append(dict(quiet_s=round(quiet, 4), loaded_s=round(loaded, 4), ratio=round(loaded / quiet, 2),
                         loaded_cpu_s=round(loaded_cpu, 4)))
    return rows


def summarize_setting(runs):
    """Over every repeat of a setting's runs: median quiet and loaded seconds, and the ratios with their median."""
    repeats = [r for run in runs for r in run['repeats']]
    ratios = [r['ratio'] for r in repeats]
    return dict(quiet_s_median=statistics.median(r['quiet_s'] for r in repeats),
                loaded_s_median=statistics.median(r['loaded_s'] for r in repeats),
                loaded_cpu_s_median=statistics.median(r['loaded_cpu_s'] for r in repeats),
                ratios=ratios, ratio_median=statistics.median(ratios))


def format_table(run):
    """The docs section: the stamp, the table of both settings and whether their losses agree."""
    titles = dict(before='before: libgomp\'s default (spin, then sleep)', after='after: the tools\' default')
    policy = {s: next(r['omp_wait_policy'] for r in run['runs'] if r['setting'] == s) for s in SETTINGS}
    lines = [stamp_line(run['stamp'], f'; {run["busy"]} busy-loop processes at nice 19 as the load'), '',
             f'Stage 1 of `{run["config"]}` on {run["data"]["scenes"]} synthetic scenes x '
             f'{run["data"]["frames_per_scene"]} frames; per repeat the median of {run["iters"]} iterations quiet, '
             f'then of {run["iters"]} under the load:', '',
             '| setting | OMP_WAIT_POLICY | quiet iteration | loaded iteration | CPU time of a loaded iteration | '
             'loaded / quiet, each repeat | median |', '|---|---|---:|---:|---:|---|---:|']
    for s in SETTINGS:
        m = run['summary'][s]
        lines.append(f'| {titles[s]} | {policy[s] or "unset"} | {m["quiet_s_median"]:.3f} s | '
                     f'{m["loaded_s_median"]:.3f} s | {m["loaded_cpu_s_median"]:.3f} s | '
                     f'{", ".join(f"{r:.2f}" for r in m["ratios"])} | '
                     f'{m["ratio_median"]:.2f} |')
    lines += ['', 'The loss sequences of all runs are ' + ('bit-identical.' if run['losses_identical'] else
                                                          '**not identical**.')]
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--iters', type=int, default=6, help='timed iterations per phase (quiet, loaded)')
    parser.add_argument('--repeats', type=int, default=3, help='quiet + loaded phases per run')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations first')
    parser.add_argument('--busy', type=int, default=2, help='background busy-loop processes (nice 19)')
    parser.add_argument('--settle', type=float, default=0.3, help='seconds after switching the load')
    parser.add_argument('--runs', type=int, default=1, help='runs of each setting (alternating)')
    parser.add_argument('--scenes', type=int, default=4)
    parser.add_argument('--frames', type=int, default=4, help='frames per scene')
    parser.add_argument('--points', type=int, default=20000, help='points per scene')
    parser.add_argument('--data-dir', default=osp.join('work_dirs', 'benchmarks', 'shared_cpu_data'))
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--worker', choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument('--labels', help=argparse.SUPPRESS)
    parser.add_argument('--frames-total', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--work-dir', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(args)
    stamp = run_stamp('bench_shared_cpu.py', argv)
    base_env = dict(os.environ, PYTHONPATH=ROOT, PYTHONHASHSEED='0', CUDA_VISIBLE_DEVICES='')
    wait_settings = set(runpy.run_path(THREADS_MODULE)['THREAD_ENV_DEFAULTS']) | {'GOMP_SPINCOUNT'}
    labels = ensure_data(args.data_dir, args.scenes, args.frames, args.points, base_env)
    runs = []
    order = [s for k in range(args.runs) for s in (SETTINGS if k % 2 == 0 else SETTINGS[::-1])]
    for i, setting in enumerate(order):
        # Both start from libgomp's default waiting, whatever this shell sets; 'after' applies the tools' defaults.
        env = {k: v for k, v in base_env.items() if k not in wait_settings}
        work_dir = osp.join(args.data_dir, 'runs', f'{i}_{setting}')
        cmd = [sys.executable, osp.abspath(__file__), '--worker', setting, '--labels', labels,
               '--frames-total', str(args.scenes * args.frames), '--work-dir', work_dir] + [
            a for k in ('iters', 'repeats', 'warmup', 'busy', 'settle') for a in (f'--{k}', str(getattr(args, k)))]
        start = time.time()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f'error: the {setting} run failed (exit {out.returncode}):\n{out.stderr[-3000:]}')
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result['repeats'] = summarize(result, args.repeats)
        result['wall_s'] = round(time.time() - start, 1)
        runs.append(result)
        print(f'{setting}: OMP_WAIT_POLICY={result["omp_wait_policy"]}, loaded/quiet '
              + ', '.join(f'{r["ratio"]:.2f} ({r["loaded_s"]:.3f} / {r["quiet_s"]:.3f} s)' for r in result['repeats'])
              + f'; {result["wall_s"]} s', flush=True)
    losses = {s: [[it['losses'] for it in r['iterations']] for r in runs if r['setting'] == s] for s in SETTINGS}
    identical = all(seq == losses['before'][0] for s in SETTINGS for seq in losses[s])
    summary = {s: summarize_setting([run for run in runs if run['setting'] == s]) for s in SETTINGS}
    run = dict(stamp=finish_stamp(stamp), config=osp.relpath(STAGE1_CONFIG, ROOT),
               data=dict(scenes=args.scenes, frames_per_scene=args.frames, points_per_scene=args.points),
               iters=args.iters, repeats=args.repeats, warmup=args.warmup, busy=args.busy,
               losses_identical=identical, summary=summary, runs=runs)
    print(format_table(run))
    if args.out:
        atomic_write_text(args.out, json.dumps(run, indent=1))
    return 0 if identical else 1


if __name__ == '__main__':
    sys.exit(main())
