"""Turn the benchmarks' JSON into the tables of docs/benchmarks.md, and keep each run's JSON beside the docs.

    python benchmarks/run_all.py --threads 1                      # writes work_dirs/benchmarks/<name>.json
    python benchmarks/docs_tables.py work_dirs/benchmarks --docs docs/benchmarks.md
    python benchmarks/docs_tables.py --check --docs docs/benchmarks.md   # do the docs match the recorded runs?

Every section of docs/benchmarks.md with numbers sits between two marker lines,
``<!-- bench:NAME:begin ... -->`` and ``<!-- bench:NAME:end -->``, and is rendered here from one run's JSON; that
JSON is copied to ``docs/bench_runs/NAME.json`` so that anyone can see the raw numbers and regenerate the table.
Only the sections whose JSON is in the given folder are replaced. Each JSON carries its stamp (date, machine,
commit, command, load average), which the section repeats. The sections are never edited by hand; a test checks
that every one equals the rendering of its recorded run.
"""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import sys
from typing import Callable, Dict, List, Optional

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path.insert(0, ROOT)  # runnable from a checkout without installing the package
RUNS_FOLDER = 'bench_runs'  # beside the docs file


# ----------------------------------------------------------------- the stamp every benchmark's JSON carries
def machine() -> dict:
    """CPU model, cores, memory and GPU of this machine."""
    from projects.sam_mtp.engine.provenance import cpu_model, memory_gib
    gpu = None
    try:
        import torch
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return dict(cpu=cpu_model(), cores=os.cpu_count(), memory_gib=memory_gib(), system=platform.platform(), gpu=gpu)


def commit() -> Optional[str]:
    """Short hash of HEAD, with ``-dirty`` when tracked files differ from it (the numbers are then not HEAD's)."""
    from projects.sam_mtp.engine.provenance import git_commit
    sha, dirty = git_commit(short=True, where=ROOT)
    return sha and sha + ('-dirty' if dirty else '')


def versions(*packages: str) -> dict:
    """Python's version and each package's: the module's ``__version__`` (torch's names its CUDA build), else the
    installed distribution's; None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version
    found = dict(python=platform.python_version())
    for name in packages:
        try:
            found[name] = getattr(__import__(name), '__version__', None) or version(name)
        except (ImportError, PackageNotFoundError):
            found[name] = None
    return found


def run_stamp(script: str, argv: Optional[List[str]]) -> dict:
    """Date, machine, commit, versions, command and load average at the start of a benchmark run."""
    args = list(sys.argv[1:] if argv is None else argv)
    return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'), machine=machine(),
                commit=commit(), versions=versions('torch', 'numpy'),
                command=' '.join(['python', f'benchmarks/{script}', *args]),
                load_average_start=list(os.getloadavg()))


def finish_stamp(stamp: dict) -> dict:
    stamp['load_average_end'] = list(os.getloadavg())
    return stamp


def stamp_line(stamp: dict, what: str = '') -> str:
    """One sentence: when, where, which commit and command, and how loaded the machine was."""
    m = stamp['machine']
    gpu = f', {m["gpu"]}' if m.get('gpu') else ', no GPU'
    load = ' / '.join(f'{v:.1f}' for v in stamp['load_average_start'])
    if stamp.get('load_average_end'):
        load += ' at the start, ' + ' / '.join(f'{v:.1f}' for v in stamp['load_average_end']) + ' at the end'
    versions = ', '.join(f'{k} {v}' for k, v in stamp['versions'].items() if v and k != 'python')
    return (f'Measured {stamp["date"]} on {m["cpu"]} ({m["cores"]} cores, {m["memory_gib"]} GiB{gpu}), commit '
            f'`{stamp["commit"]}`, with `{stamp["command"]}`{what}: {versions}; load average {load} '
            '(1 / 5 / 15 min).')


def atomic_write_text(path: str, text: str) -> None:
    from projects.sam_mtp.labels.fileio import atomic_write_bytes
    atomic_write_bytes(path, text.encode())


# ----------------------------------------------------------------- the tables
def _ms(value: float) -> str:
    return f'{value:.1f} ms' if value < 100 else f'{value:,.0f} ms'


def render_tokenizers(run: dict) -> str:
    lines = [stamp_line(run['stamp'], f'; {run["threads"]} thread(s), device {run["device"]}'), '',
             f'One frame, {run["regions"]} SAM regions (Voronoi cells), {run["unassigned"]:.0%} of the points in no '
             f'region; medians of {run["repeats"]} calls after a warm-up call.', '',
             '| points | SAM-guided tokens | SAM-guided | FPS(256) + kNN(128) tokenizer | FPS + kNN ops alone | '
             'speed-up vs tokenizer | vs ops |', '|---:|---:|---:|---:|---:|---:|---:|']
    for r in run['rows']:
        lines.append(f'| {r["points"]:,} | {r["sam_tokens"]} | {_ms(r["sam_guided_ms"])} | '
                     f'{_ms(r["fps_knn_tokenizer_ms"])} | {_ms(r["fps_knn_ops_ms"])} | '
                     f'{r["speedup_vs_tokenizer"]:.1f}× | {r["speedup_vs_ops"]:.1f}× |')
    if run.get('acceptance_10x_at_20k') is not None:
        lines += ['', 'The acceptance (SAM-guided ≥ 10× faster than FPS(256) + kNN(128) at 20k points) '
                  + ('holds.' if run['acceptance_10x_at_20k'] else '**does not hold**.')]
    return '\n'.join(lines) + '\n'


LABEL_STAGES = (
    ('read', 'read (jpg, png, pose)'),
    ('mask', 'mask source ({regions}-region Voronoi stand-in, not SAM)'),
    ('feature', 'feature model (tiny random ViT, {feature_dim}-d)'),
    ('geometry', 'geometry (back-projection, colour reprojection, sampling)'),
    ('pooling', 'pooling (mean + max per region, {feature_dim}-d)'),
)


def render_label_generation(run: dict) -> str:
    fmt = dict(regions=run['regions'], feature_dim=run['feature_dim'])
    lines = [stamp_line(run['stamp'], f'; {run["threads"]} thread(s)'), '',
             f'Per frame, median over {run["frames"]} frames after a warm-up frame ({run["num_points"]:,} points, '
             f'{run["regions_per_frame"]:.0f} regions per frame):', '', '| stage | median per frame |', '|---|---:|']
    for key, title in LABEL_STAGES:
        lines.append(f'| {title.format(**fmt)} | {_ms(run["stages"][key]["median_ms"])} |')
    total = _ms(run['geometry_plus_pooling']['median_ms'])
    lines.append(f'| **geometry + pooling** (the target: < 50 ms) | **{total}** |')
    lines.append(f'| write (compressed .npz) | {_ms(run["stages"]["write"]["median_ms"])} |')
    lines.append(f'| pooling of ViT-B-sized features (768 × 32 × 43) | {_ms(run["pooling_vit_b_768"]["median_ms"])} |')
    if 'tiny_sam_amg_8x8_points' in run:
        lines.append(f'| tiny random SAM through SAM-AMG (64 prompts) | '
                     f'{_ms(run["tiny_sam_amg_8x8_points"]["median_ms"])} |')
    return '\n'.join(lines) + '\n'


def render_train_step(run: dict) -> str:
    rows = run['stages']
    first = rows[0]
    lines = [stamp_line(run['stamp'], f'; {first["threads"]} thread(s), device {first["device"]}'), '',
             f'A batch of {first["batch"]} frames × {first["points"]:,} points with {first["regions"]} regions, '
             f'median of {run["steps"]} steps after a warm-up step. Peak memory is the process\'s peak RSS on CPU '
             '(it includes the Python / torch / mmdet3d runtime, about 1 GB by itself), peak allocated memory on '
             'CUDA:', '', '| stage | step time (median) | step time (min) | peak memory |', '|---|---:|---:|---:|']
    titles = {1: '1 (distillation)', 2: '2 (masked token prediction, frozen teacher forward included)'}
    for r in rows:
        lines.append(f'| {titles[r["stage"]]} | {r["step_s_median"]:.2f} s | {r["step_s_min"]:.2f} s | '
                     f'{r["peak_memory_mb"]:,.0f} MB |')
    return '\n'.join(lines) + '\n'


def _point_ops(run: dict) -> str:
    sys.path.insert(0, HERE)
    from point_ops_table import render
    return render(run)


def _scene_segments(run: dict) -> str:
    sys.path.insert(0, HERE)
    from bench_scene_segments import format_table
    return format_table(run)


def _shared_cpu(run: dict) -> str:
    sys.path.insert(0, HERE)
    from bench_shared_cpu import format_table
    return format_table(run)


# name -> renderer; the name is the JSON's file name in run_all.py's folder and the docs markers' name.
SECTIONS: Dict[str, Callable[[dict], str]] = dict(
    point_ops=_point_ops, tokenizers=render_tokenizers, label_generation=render_label_generation,
    train_step=render_train_step, scene_segments=_scene_segments, shared_cpu=_shared_cpu)


def markers(name: str):
    return (f'<!-- bench:{name}:begin (generated by benchmarks/docs_tables.py from {RUNS_FOLDER}/{name}.json; '
            'do not edit) -->', f'<!-- bench:{name}:end -->')


def _split(text: str, name: str, path: str):
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f'{path}: needs exactly one "{begin}" line followed by one "{end}" line')
    head, rest = text.split(begin, 1)
    body, tail = rest.split(end, 1)
    return head + begin + '\n', body[1:] if body.startswith('\n') else body, end + tail


def section(text: str, name: str, path: str = 'docs') -> str:
    """The generated text of section ``name`` in a docs file's text."""
    return _split(text, name, path)[1]


def load_run(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{path}: cannot read a benchmark JSON ({e})') from None


def update_docs(docs: str, runs_dir: str, names: Optional[List[str]] = None) -> List[str]:
    """Replace the sections whose ``<name>.json`` is in ``runs_dir`` and keep those JSON files beside ``docs``."""
    names = [n for n in (names or SECTIONS) if osp.exists(osp.join(runs_dir, f'{n}.json'))]
    if not names:
        raise ValueError(f'{runs_dir}: no benchmark JSON ({", ".join(f"{n}.json" for n in SECTIONS)})')
    with open(docs) as f:
        text = f.read()
    runs = {n: load_run(osp.join(runs_dir, f'{n}.json')) for n in names}
    for name, run in runs.items():
        head, _, tail = _split(text, name, docs)
        text = head + SECTIONS[name](run) + tail
    keep = osp.join(osp.dirname(osp.abspath(docs)), RUNS_FOLDER)
    os.makedirs(keep, exist_ok=True)
    for name, run in runs.items():
        atomic_write_text(osp.join(keep, f'{name}.json'), json.dumps(run, indent=1) + '\n')
    atomic_write_text(docs, text)
    return names


def check_docs(docs: str) -> List[str]:
    """Names of the sections that differ from the rendering of their recorded run (empty: all match)."""
    with open(docs) as f:
        text = f.read()
    keep = osp.join(osp.dirname(osp.abspath(docs)), RUNS_FOLDER)
    return [name for name in SECTIONS
            if section(text, name, docs) != SECTIONS[name](load_run(osp.join(keep, f'{name}.json')))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('runs', nargs='?', help="folder with the benchmarks' JSON (run_all.py's --out-dir)")
    parser.add_argument('--docs', default=osp.join('docs', 'benchmarks.md'))
    parser.add_argument('--only', nargs='+', choices=sorted(SECTIONS), help='replace only these sections')
    parser.add_argument('--check', action='store_true', help='only check the docs against the recorded runs')
    args = parser.parse_args(argv)
    if args.check:
        stale = check_docs(args.docs)
        print(f'{args.docs}: ' + (f'differs from the recorded runs in {", ".join(stale)}' if stale
                                  else 'every section is its recorded run'))
        return 1 if stale else 0
    if not args.runs:
        parser.error('give the folder of the runs, or --check')
    names = update_docs(args.docs, args.runs, args.only)
    print(f'updated {args.docs}: {", ".join(names)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
