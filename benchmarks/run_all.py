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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out-dir', default=osp.join('work_dirs', 'benchmarks'))
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    threads = ['--threads', str(args.threads)]
    jobs = [
        ('point_ops', ['bench_point_ops.py', *threads, '--out']),
        ('tokenizers', ['bench_tokenizers.py', '--points', '20000', '40000', *threads, '--out']),
        ('label_generation', ['bench_label_generation.py', *threads, '--json']),
        ('train_step', ['bench_train_step.py', '--out']),
        ('scene_segments', ['bench_scene_segments.py', '--out']),
    ]
    env = dict(os.environ, PYTHONPATH=ROOT)
    for name, (script, *rest) in jobs:
        out = osp.join(args.out_dir, f'{name}.json')
        print(f'== {name}: {script} -> {out}', flush=True)
        subprocess.run([sys.executable, osp.join(HERE, script), *rest, out], check=True, env=env)


if __name__ == '__main__':
    main()
