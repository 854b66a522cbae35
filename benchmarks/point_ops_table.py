"""Render the JSON of benchmarks/bench_point_ops.py as markdown (docs/benchmarks.md's point-op section).

    python benchmarks/point_ops_table.py work_dirs/benchmarks/point_ops.json     # print the table
    python benchmarks/docs_tables.py work_dirs/benchmarks --only point_ops        # put it into the docs

Everything in the table comes from the JSON (numbers, date, machine, commit, command).
"""
import argparse
import json
from typing import List

OP_LABELS = {
    'furthest_point_sample': 'FPS',
    'knn': 'kNN k = {knn_k}',
    'ball_query': 'ball query r = {radius}, k = {nsample}',
    'ball_query_stacked': 'ball query, stacked layout',
    'three_nn': 'three_nn (N targets on M sources)',
}


def _ms(value) -> str:
    if value is None:
        return '-'
    return f'{value:,.0f} ms' if value >= 100 else f'{value:.1f} ms'


def _identical(value) -> str:
    return 'not run' if value is None else ('yes' if value else '**no**')


def _times(value) -> str:
    return '-' if value is None else f'{value:.0f}×'


def _label(op: str, args: dict) -> str:
    return OP_LABELS.get(op, op).format(**args)


def render(results: dict) -> str:
    meta, args = results['meta'], results['meta']['args']
    machine, versions = meta['machine'], meta['versions']
    lines: List[str] = []
    load = ' / '.join(f'{v:.1f}' for v in meta['load_average_start'])
    load_end = meta.get('load_average_end')
    load_text = f'load average {load}' + (f' at the start, {" / ".join(f"{v:.1f}" for v in load_end)} at the end'
                                          if load_end else '')
    gpu = f', {machine["gpu"]}' if machine.get('gpu') else ', no GPU'
    lines.append(
        f'Measured {meta["date"]} on {machine["cpu"]} ({machine["cores"]} cores, {machine["memory_gib"]} GiB{gpu}), '
        f'commit `{meta["commit"]}`, with `{meta["command"]}`: torch {versions["torch"]}, numba {versions["numba"]}, '
        f'scipy {versions["scipy"]}, fpsample {versions["fpsample"]}; {meta["threads"]} thread(s) '
        f'(`torch.set_num_threads`; scipy and fpsample single-threaded); {load_text} (1 / 5 / 15 min).')
    lines.append('')
    lines.append('Medians of interleaved repeats (ours, peers and the previous version alternate call by call). '
                 '"ours / peer" is against the fastest peer variant; the targets are the issue\'s.')
    lines.append('')
    lines.append('| op | N → M | ours | previous (pure PyTorch) | speed-up | fastest peer | peer | ours / peer | '
                 'target | identical to previous |')
    lines.append('|---|---|---:|---:|---:|---|---:|---:|---|---|')
    for row in results['ops']:
        median = row['median_ms']
        peer = row.get('best_peer')
        ratio = row.get('ours_over_best_peer')
        target = f'≤ {row["target"]}×' + ('' if ratio is None else (' met' if row['met'] else ' **missed**'))
        lines.append(
            f'| {_label(row["op"], args)} | {row["points"]:,} → {row["centres"]:,} | {_ms(median["ours"])} | '
            f'{_ms(median.get("previous"))} | {_times(row["previous_over_ours"])} | {peer or "-"} | '
            f'{_ms(median.get(peer)) if peer else "-"} | {"-" if ratio is None else f"{ratio:.2f}×"} | {target} | '
            f'{_identical(row["identical_to_previous"])} |')
    radii = [row for row in results['ops'] if 'coverage_radius_m' in row]
    if radii:
        lines.append('')
        parts = []
        for row in radii:
            cover = row['coverage_radius_m']
            peers = ', '.join(f'{name.replace("fpsample kdline ", "")} {value:.3f}'
                              for name, value in cover.items() if name != 'ours')
            parts.append(f'{row["points"]:,} → {row["centres"]:,}: ours {cover["ours"]:.3f}'
                         + (f', fpsample {peers}' if peers else ''))
        lines.append('FPS coverage radius (largest distance of a point to its nearest sample, m): '
                     + '; '.join(parts) + '. Ours is exactly mmcv\'s FPS (start at index 0); fpsample picks '
                     'a different start, so its samples differ while covering the scene as well.')
    threads = results.get('threads')
    if threads:
        lines.append('')
        lines.append(f'Batch spread over threads (ours, batch of {threads["batch"]} scenes, '
                     f'{threads["points"]:,} → {threads["centres"]:,}):')
        lines.append('')
        lines.append(f'| op | 1 thread | {threads["threads"]} threads | speed-up |')
        lines.append('|---|---:|---:|---:|')
        for op, row in threads['ops'].items():
            lines.append(f'| {_label(op, args)} | {_ms(row["one_thread_ms"])} | {_ms(row["threads_ms"])} | '
                         f'{row["speedup"]:.1f}× |')
    if results.get('train_steps'):
        lines.append('')
        lines.append(f'One training step on CPU, batch 1, {meta["threads"]} thread(s), random weights '
                     '(forward, loss, backward, optimizer step; after one warm-up step):')
        lines.append('')
        lines.append('| detector (config) | points | before (pure PyTorch ops) | after | speed-up |')
        lines.append('|---|---:|---:|---:|---:|')
        for row in results['train_steps']:
            lines.append(f'| {row["model"]} (`{row["config"]}`) | {row["points"]:,} | {row["before_s"]:.2f} s | '
                         f'{row["after_s"]:.2f} s | {row["speedup"]:.1f}× |')
    compile_ = results.get('compile')
    if compile_:
        cold, warm = compile_['cold'], compile_['warm']
        lines.append('')
        lines.append(f'First call of the five ops in a fresh process: {cold["total_wall_s"]:.1f} s '
                     f'({cold["total_cpu_s"]:.1f} s CPU) with an empty numba cache (once per fresh checkout or '
                     f'`NUMBA_CACHE_DIR`: compilation), {warm["total_wall_s"]:.2f} s ({warm["total_cpu_s"]:.2f} s '
                     'CPU) once the cache is filled (every later process: loading).')
    if results.get('cuda'):
        lines.append('')
        lines.append('| op (CUDA) | N → M | backend | median |')
        lines.append('|---|---|---|---:|')
        for row in results['cuda']:
            lines.append(f'| {_label(row["op"], args)} | {row["points"]:,} → {row["centres"]:,} | '
                         f'{row["backend"]} | {_ms(row["median_ms"])} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('json', help='output of benchmarks/bench_point_ops.py --out')
    args = parser.parse_args(argv)
    with open(args.json) as f:
        section = render(json.load(f))
    print(section, end='')


if __name__ == '__main__':
    main()
