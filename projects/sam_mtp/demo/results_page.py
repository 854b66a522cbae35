"""docs/demo_results.md, generated from the report.json files of demo runs (never written by hand): the first
report gives the tables; every further one is a rerun of the same settings, and the page states the largest
run-to-run difference of any value between them; a report of ``--targets random-vit`` adds the same comparison
with those targets beside the default one. ``tools/demo_report_to_docs.py`` is its command line."""
import json
import math
import os
import os.path as osp
import shutil
from typing import Optional, Sequence

from . import report


class ResultsPageError(ValueError):
    """A report cannot be used for the page; the message names the file and the problem."""


def load_report(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise ResultsPageError(f'{path}: cannot read the demo report ({err})')
    if data.get('schema') != 2:
        raise ResultsPageError(f'{path}: not a report of this tools/demo.py (schema {data.get("schema")!r}, '
                               'expected 2); rerun the demo')
    return data


def _metric_values(data):
    """{(kind, name, metric): value} of every fine-tuning run, probe run and pretraining loss of a report."""
    values = {}
    for run in data['runs']:
        for k, v in run['metrics'].items():
            values[('finetune', run['name'], k)] = v
    for run in data['probe']['runs']:
        for k, v in run['metrics'].items():
            values[('probe', f'{run["init"]} seed {run["seed"]}', k)] = v
    for stage, losses in data['pretraining'].items():
        for k, (first, last) in losses.items():
            values[('pretraining', stage, k + ' first')] = first
            values[('pretraining', stage, k + ' last')] = last
    return values


def run_to_run_spread(reports):
    """Largest |difference| of any shared value between the first report and each other one, and how many
    values were compared and differ."""
    base = _metric_values(reports[0])
    worst, compared, differing = 0.0, 0, 0
    for other in reports[1:]:
        values = _metric_values(other)
        for key in base.keys() & values.keys():
            a, b = base[key], values[key]
            compared += 1
            if (math.isnan(a) and math.isnan(b)) or a == b:
                continue
            differing += 1
            worst = max(worst, abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf)
    return dict(max_abs_difference=worst, compared=compared, differing=differing)


def check_same_settings(a, b, path):
    keys = ('targets', 'seeds', 'tasks', 'label_task', 'label_fractions', 'train_scenes', 'val_scenes',
            'frames_per_scene', 'points_per_scene', 'stage1_epochs', 'stage2_epochs', 'finetune_epochs')
    diff = [k for k in keys if a['settings'].get(k) != b['settings'].get(k)]
    if diff:
        raise ResultsPageError(f'{path}: a rerun must have the same settings as the first report; differs in {diff}')


def _stamp(data):
    env = data['environment']
    m = env['machine']
    commit = (env['commit'] or 'unknown')[:10] + (' (uncommitted changes)' if env.get('dirty') else '')
    return (f'{env["date"]}, {m["cpu"]} ({m["cpu_count"]} cores, {m["torch_threads"]} torch threads, '
            f'{m["memory_gib"]} GiB), commit {commit}, torch {env["versions"]["torch"]}, mmdet3d '
            f'{env["versions"]["mmdet3d"]}')


def _timing_table(data):
    lines = ['| step | wall s | CPU s |', '|---|---|---|']
    total = 0.0
    for name, t in data['timings_s'].items():
        total += t['seconds']
        lines.append(f'| {name} | {t["seconds"]:.0f} | {t["cpu_seconds"]:.0f} |')
    lines.append(f'| **all steps** | **{total:.0f}** ({total / 60:.1f} min) | |')
    return '\n'.join(lines) + '\n'


def _side_by_side(default, stand_in):
    rows = {(c['task'], c['fraction'], c['metric']): c for c in stand_in['comparisons']}
    rows.update({('probe ' + c['a_name'], c['fraction'], c['metric']): c for c in stand_in['probe']['comparisons']})
    lines = [f'| comparison | train scenes | metric | {default["settings"]["targets"]} targets: difference [interval] '
             f'| {stand_in["settings"]["targets"]} targets: difference [interval] |', '|---|---|---|---|---|']

    def cell(c):
        if c is None:
            return 'not run'
        d = c['diff']
        mark = ' **excludes 0**' if d['excludes_zero'] else ''
        return f'{d["mean"]:+.3f} [{d["lo"]:+.3f}, {d["hi"]:+.3f}]{mark}'

    for c in default['comparisons']:
        other = rows.get((c['task'], c['fraction'], c['metric']))
        lines.append(f'| {c["task"]}: pretrained - scratch | {c["fraction"]:.0%} | {c["metric"]} | {cell(c)} | '
                     f'{cell(other)} |')
    for c in default['probe']['comparisons']:
        other = rows.get(('probe ' + c['a_name'], c['fraction'], c['metric']))
        lines.append(f'| probe: {c["a_name"]} - {c["b_name"]} | all | {c["metric"]} | {cell(c)} | {cell(other)} |')
    return '\n'.join(lines) + '\n'


def render(reports, paths, stand_in=None, make_time=None, picture=None):
    first = reports[0]
    s = first['settings']
    spread = run_to_run_spread(reports) if len(reports) > 1 else None
    level = f'{s["confidence"]:.0%}'
    out = ['# Demo results (`make demo`, CPU)', '',
           '<!-- Generated by tools/demo_report_to_docs.py from ' + ', '.join(paths) + '; do not edit by hand. -->',
           '',
           f'Measured: {_stamp(first)}. Command: `{s["command"]}`.' +
           (f' `time make demo` (environment installed): {make_time}.' if make_time else ''), '']
    if spread is not None:
        same = spread['differing'] == 0
        out += [f'**Run-to-run spread.** {len(reports)} runs of the same command from clean work dirs on this machine '
                f'({", ".join(r["environment"]["date"] for r in reports)}): '
                + ('every one of the ' f'{spread["compared"]} metrics and losses compared is **identical**.' if same
                   else f'{spread["differing"]} of {spread["compared"]} metrics and losses differ, by at most '
                        f'{spread["max_abs_difference"]:.4g}.'), '']
    out += ['**What the numbers are.** ' + first['note'] + f' {s["train_scenes"]} training and {s["val_scenes"]} '
            f'validation synthetic scenes (`tools/make_synthetic_data.py`), {s["frames_per_scene"]} RGB-D frames each; '
            f'labels from `{s["label_config"]}`. For each of the {len(s["seeds"])} seeds {s["seeds"]} the demo-width '
            f'encoder (`configs/sam_mtp/demo/`) is pretrained {s["stage1_epochs"]} + {s["stage2_epochs"]} epochs '
            '(stage 1, stage 2), and one pair of fine-tuning runs is made with the same seed: from that seed\'s '
            'stage-2 encoder and from scratch, sharing data order, augmentation and head initialisation. Fine-tuning: '
            f'{s["finetune_epochs"]} epochs, evaluated on the validation scenes with mmdet3d\'s `IndoorMetric` '
            '(per-class AP averaged over the classes present) and `SegMetric`. Each difference is pretrained - '
            f'scratch per pair; its {level} Student-t interval over the pairs includes the variance of pretraining '
            'as well as of fine-tuning. These are toy-scale numbers, **not** ScanNet results.', '']
    out += ['## Pretrained vs scratch, all training scenes', '', report.comparison_table(first['comparisons'], 1.0)]
    label_rows = [c for c in first['comparisons'] if c['task'] == s['label_task']]
    if s['label_fractions']:
        out += ['## Label efficiency', '',
                f'{s["label_task"]} fine-tuned on a seeded subset of the training scenes (the same subset for both '
                'runs of a pair; repeated so that every run trains the same number of iterations).', '',
                report.comparison_table(label_rows)]
        if picture:
            out += [f'![label efficiency]({picture})', '']
    out += ['## Frozen-feature linear probe', '',
            'One linear layer on the frozen encoder\'s token features, fitted on the training scenes, predicts every '
            'point\'s semantic class on the validation scenes (`tools/linear_probe.py`, per-point mIoU / accuracy '
            'with mmdet3d\'s `seg_eval`); random init vs the stage-1 and stage-2 encoders of every seed.', '',
            report.probe_table(first['probe']), report.comparison_table(first['probe']['comparisons'])]
    out += ['## Reading', '', 'Generated from the intervals above: a difference is called only when its interval '
            'excludes 0.', ''] + ['- ' + t for t in report.reading(first['comparisons'] +
                                                                   first['probe']['comparisons'])] + ['']
    if stand_in is not None:
        out += ['## The same comparison with targets that carry no class', '',
                f'`python tools/demo.py --targets {stand_in["settings"]["targets"]}` (not part of the default run; '
                f'measured {_stamp(stand_in)}): ' + stand_in['note'], '', _side_by_side(first, stand_in), '',
                'Reading (random-ViT targets):', ''] + \
               ['- ' + t for t in report.reading(stand_in['comparisons'] + stand_in['probe']['comparisons'])] + ['']
    out += ['## Pretraining losses (first logged -> last)', '', '| run | loss | first | last |', '|---|---|---|---|']
    for stage, losses in first['pretraining'].items():
        for name, (a, b) in losses.items():
            out.append(f'| {stage} | {name} | {a:.4f} | {b:.4f} |')
    out += ['', '## Time', '', _timing_table(first),
            'Wall seconds depend on the machine\'s load; CPU seconds add up every core\'s time.', '',
            '## Every run', '', report.markdown_table(report.summarize_runs(first['runs'], sorted(
                {m for ms in s['metrics'].values() for m in ms})), s['metrics'])]
    return '\n'.join(out)


def write_results_page(report_paths: Sequence[str], out: str, images_dir: str, stand_in_path: Optional[str] = None,
                       make_time: Optional[str] = None) -> str:
    """Check the reports, copy the label-efficiency picture into ``images_dir`` and write the page to ``out``;
    returns its text."""
    from projects.sam_mtp.labels.fileio import atomic_write_bytes
    reports = [load_report(p) for p in report_paths]
    for path, data in zip(report_paths[1:], reports[1:]):
        check_same_settings(reports[0], data, path)
    stand_in = load_report(stand_in_path) if stand_in_path else None
    picture = None
    source = reports[0]['pictures'].get('label_efficiency')
    if source:
        if not osp.isfile(source):
            source = osp.join(osp.dirname(report_paths[0]), osp.basename(source))
        if osp.isfile(source):
            os.makedirs(images_dir, exist_ok=True)
            target = osp.join(images_dir, 'demo_label_efficiency.png')
            shutil.copyfile(source, target)
            picture = osp.relpath(target, osp.dirname(osp.abspath(out)) if osp.dirname(out) else '.')
    text = render(reports, list(report_paths), stand_in, make_time, picture)
    atomic_write_bytes(out, text.encode())
    return text
