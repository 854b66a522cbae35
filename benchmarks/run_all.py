"""Run every benchmark once and write their JSON next to each other (``make bench``).

    python benchmarks/run_all.py [--out-dir work_dirs/benchmarks] [--threads 1]

Results are machine-dependent; each JSON carries its stamp (date, machine, commit, command, load average).
``python benchmarks/docs_tables.py work_dirs/benchmarks --docs docs/benchmarks.md`` turns them into the tables of
docs/benchmarks.md. Ratios (e.g. SAM-guided vs FPS+kNN tokenization) are measured within one run.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
# name (the JSON's file name and docs_tables.py's section) -> script and its arguments, the output path last
JOBS = [
    ('point_ops', ['bench_point_ops.py', '--threads', '{threads}', '--out']),
    ('tokenizers', ['bench_tokenizers.py', '--points', '20000', '40000', '--threads', '{threads}', '--out']),
    ('label_generation', ['bench_label_generation.py', '--threads', '{threads}', '--json']),
    ('train_step', ['bench_train_step.py', '--out']),
    ('scene_segments', ['bench_scene_segments.py', '--out']),
    ('shared_cpu', ['bench_shared_cpu.py', '--out']),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'benchmarks'))
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--only', nargs='+', choices=[name for name, _ in JOBS], help='run only these benchmarks')
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=ROOT)
    failed = []
    for name, (script, *rest) in JOBS:
        if args.only and name not in args.only:
            continue
        out = osp.join(args.out_dir, f'{name}.json')
        rest = [str(args.threads) if a == '{threads}' else a for a in rest]
        print(f'== {name}: {script} -> {out}', flush=True)
        # A benchmark that misses its target (exit 1) or crashes does not stop the others; its JSON, if written,
        # stays, and the run ends with the list of failures.
        code = subprocess.run([sys.executable, osp.join(HERE, script), *rest, out], env=env).returncode
        if code:
            failed.append(f'{name} (exit {code})')
    if failed:
        print('failed or missed its target: ' + ', '.join(failed), flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
