"""docs/demo_results.md, generated from the report.json files of demo runs (never written by hand): the first
report gives the tables; every further one is a rerun of the same settings, and the page states the largest
run-to-run difference of any value between them; a report of ``--targets random-vit`` adds the same comparison
with those targets beside the default one. ``tools/demo_report_to_docs.py`` is its command line."""
import json
import math
import os
import os.path as osp
import re
import shutil
from typing import Dict, Optional, Sequence, Tuple

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
    """Markdown: every comparison of the default report beside the same comparison of the stand-in report."""
    def key(c):
        return c['task'], c['fraction'], c['metric'], c['a_name'], c['b_name']

    rows = {key(c): c for c in stand_in['comparisons'] + stand_in['probe']['comparisons']}
    lines = [f'| comparison | train scenes | metric | {default["settings"]["targets"]} targets: difference [interval] '
             f'| {stand_in["settings"]["targets"]} targets: difference [interval] |', '|---|---|---|---|---|']

    def cell(c):
        if c is None:
            return 'not run'
        d = c['diff']
        mark = ' **excludes 0**' if d['excludes_zero'] else ''
        return f'{d["mean"]:+.3f} [{d["lo"]:+.3f}, {d["hi"]:+.3f}]{mark}'

    for c in default['comparisons'] + default['probe']['comparisons']:
        scenes = 'all' if c['task'] == 'probe' else f'{c["fraction"]:.0%}'
        lines.append(f'| {c["task"]}: {c["a_name"]} - {c["b_name"]} | {scenes} | {c["metric"]} | {cell(c)} | '
                     f'{cell(rows.get(key(c)))} |')
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------- other machines
_NUMBER = r'([-+]?(?:\d+\.\d+|\d+)|nan)'
_CALL = re.compile(r'^- (\S+) (\S+)(?: \((\d+)% of the training scenes\))?: (?:(\S+) is (?:higher|lower) than (\S+)|'
                   r'no difference between (\S+) and (\S+) resolved) \(' + _NUMBER + r', \d+% interval \[' + _NUMBER
                   + r', ' + _NUMBER + r'\], (\d+) pairs')
_STAMP = re.compile(r'^Measured: (\d{4}-\d\d-\d\d \d\d:\d\d UTC), (.+?) \(\d+ cores')


def _section(text: str, title: str) -> str:
    """The lines of the page's ``## title`` section (empty when the page has none)."""
    match = re.search(rf'^## {re.escape(title)}\n(.*?)(?=^## |\Z)', text, flags=re.M | re.S)
    return match.group(1) if match else ''


def _cells(line: str):
    return [c.strip() for c in line.strip().strip('|').split('|')]


def documented_values(page: str) -> dict:
    """The numbers a page of this generator documents, read back from its text: ``calls`` (one per sentence of
    the reading, key ``(task, fraction %, metric, a, b)`` -> ``(mean, lo, hi, excludes 0)``), ``values`` (every
    per-seed value of the probe and of every run, every pretraining loss; key -> number) and the ``cpu`` and
    ``date`` of its stamp. Pages written before the probe table named each row's pair are read as well: only the
    reading, the per-seed tables and the losses are used."""
    stamp = next((m for m in map(_STAMP.match, page.splitlines()) if m), None)
    calls = {}
    for line in _section(page, 'Reading').splitlines():
        m = _CALL.match(line)
        if m:
            g = m.groups()
            a, b = (g[3], g[4]) if g[3] else (g[5], g[6])
            mean, lo, hi = (float(v) for v in g[7:10])
            calls[(g[0], int(g[2] or 100), g[1], a, b)] = (mean, lo, hi, g[3] is not None)
    values = {}
    for line in _section(page, 'Frozen-feature linear probe').splitlines():
        cells = _cells(line)
        if len(cells) == 6 and cells[0] in ('random-init', 'stage1', 'stage2'):
            for i, v in enumerate(cells[5].split(',')):
                values[('probe', cells[0], 'miou', i)] = float(v)
    for line in _section(page, 'Every run').splitlines():
        cells = _cells(line)
        if len(cells) == 6 and cells[1].endswith('%'):
            for i, v in enumerate(cells[5].split(',')):
                values[('run', cells[0], cells[1], cells[2], cells[3], i)] = float(v)
    for line in _section(page, 'Pretraining losses (first logged -> last)').splitlines():
        cells = _cells(line)
        if len(cells) == 4 and cells[0].startswith('stage'):
            values[('loss', cells[0], cells[1], 'first')] = float(cells[2])
            values[('loss', cells[0], cells[1], 'last')] = float(cells[3])
    return dict(calls=calls, values=values, cpu=stamp.group(2) if stamp else 'unknown',
                date=stamp.group(1) if stamp else 'unknown')


def cross_machine(reference: dict, current: dict) -> dict:
    """How the documented numbers of one command differ between two machines (two :func:`documented_values`).

    Returns ``compared`` / ``differing`` (numbers as printed, reading calls counted as three: mean and bounds),
    ``max_abs_difference``, ``calls`` (calls present on both), ``flipped`` (keys of calls whose verdict differs)
    and ``spread``: per (task, metric), the largest move of an interval bound of any of its calls, which
    :func:`.report.reading` uses to mark fragile calls."""
    pairs = [(reference['values'][k], current['values'][k]) for k in reference['values'].keys() & current['values']]
    shared = reference['calls'].keys() & current['calls'].keys()
    spread: Dict[Tuple[str, str], float] = {}
    for key in shared:
        (_, lo_a, hi_a, _), (_, lo_b, hi_b, _) = reference['calls'][key], current['calls'][key]
        pairs += list(zip(reference['calls'][key][:3], current['calls'][key][:3]))
        task, _, metric = key[:3]
        spread[(task, metric)] = max(spread.get((task, metric), 0.0), abs(lo_a - lo_b), abs(hi_a - hi_b))
    differing = [abs(a - b) for a, b in pairs if a != b and not (math.isnan(a) and math.isnan(b))]
    flipped = sorted(k for k in shared if reference['calls'][k][3] != current['calls'][k][3])
    return dict(compared=len(pairs), differing=len(differing), max_abs_difference=max(differing, default=0.0),
                calls=len(shared), flipped=flipped, spread=spread)


def load_reference(path: str) -> dict:
    """:func:`documented_values` of another machine's run: a page of this generator (``.md``) or a report.json."""
    if path.endswith('.md'):
        try:
            with open(path) as f:
                values = documented_values(f.read())
        except OSError as err:
            raise ResultsPageError(f'{path}: cannot read the page ({err})')
        if not values['calls']:
            raise ResultsPageError(f'{path}: no reading found; is it a page written by tools/demo_report_to_docs.py?')
        return values
    data = load_report(path)
    return documented_values(render([data], [path]))


def _cross_machine_section(first: dict, reference: dict, result: dict) -> list:
    rows = ['| task | metric | largest move of an interval bound |', '|---|---|---|']
    rows += [f'| {t} | {m} | {v:.3f} |' for (t, m), v in sorted(result['spread'].items())]
    flipped = '; '.join(f'{k[0]} {k[2]} {k[3]} vs {k[4]}' + ('' if k[1] == 100 else f' ({k[1]}%)')
                        for k in result['flipped']) or 'none'
    return ['## Across machines', '',
            f'The numbers above come from one machine, {first["environment"]["machine"]["cpu"]} (the stamp at the '
            'top; every report records its CPU). Seeded CPU runs repeat exactly on one machine, not across CPU types '
            '(float reductions differ between CPU kernels, and training amplifies the last bits). The same command '
            f'on {reference["cpu"]} ({reference["date"]}): **{result["differing"]} of {result["compared"]}** '
            f'documented values differ (largest |difference| {result["max_abs_difference"]:.3f}), and '
            f'**{len(result["flipped"])} of {result["calls"]}** calls of the reading give the other verdict '
            f'({flipped}). How far interval bounds moved:', '', '\n'.join(rows), '',
            'A sentence of the reading is marked **fragile** when its interval\'s nearer bound lies within that move '
            'of 0: on another CPU type its verdict may flip. Only the unmarked calls are robust to the machine.', '']


def per_class_iou(data: dict, task: str = 'seg') -> list:
    """Markdown lines: for every class, in how many of the task's fine-tuning runs its IoU is above 0, and how
    many runs have IoU > 0 on no class but wall and floor (mmdet3d's SegMetric gives each class's IoU)."""
    runs = [r for r in data['runs'] if r['task'] == task]
    skip = {'miou', 'acc', 'acc_cls'}
    classes = [k for k in (runs[0]['raw_metrics'] if runs else {}) if k not in skip]
    if not classes:
        return []
    lines = ['| class | runs with IoU > 0 | mean IoU |', '|---|---|---|']
    for name in classes:
        values = [r['raw_metrics'][name] for r in runs]
        hits = sum(1 for v in values if v > 0)
        finite = [v for v in values if not math.isnan(v)]
        mean = f'{sum(finite) / len(finite):.3f}' if finite else 'nan'
        lines.append(f'| {name} | {hits} of {len(runs)} | {mean} |')
    only = sum(1 for r in runs if {k for k in classes if r['raw_metrics'][k] > 0} <= {'wall', 'floor'})
    return lines + ['', f'**{only} of {len(runs)}** {task} runs have IoU > 0 on no class other than wall and floor.']


def _interval(stats: dict) -> str:
    return f'{stats["mean"]:.3f} [{stats["lo"]:.3f}, {stats["hi"]:.3f}]'


def _diff(c: Optional[dict]) -> str:
    if c is None:
        return ''
    d = c['diff']
    return f'{d["mean"]:+.3f} [{d["lo"]:+.3f}, {d["hi"]:+.3f}]' + (' **excludes 0**' if d['excludes_zero'] else '')


def _stage2_study_section(study: dict) -> list:
    """The stage-2 experiments (benchmarks/demo_stage2_study.py): what each explanation predicts and what was
    measured, then the probe mIoU of every encoder, paired by seed with the stage-1 and stage-2 encoders."""
    miou = {name: stats['miou']['mean'] for name, stats in study['summary'].items()}
    long = f'stage2 {study["long_epochs"]}e'
    checkpoints = [n for n in miou if n.startswith(long + ' @')]

    def diff(a, b):
        d = report.paired_diff(study['comparisons'], a, b, 'probe', 'miou')
        return _diff(None if d is None else dict(diff=d)) or 'n/a'

    def layers(name):
        return [miou[n] for n in miou if n == name or n.startswith(name + ' [')]

    def layer_range(name):
        return f'{min(layers(name)):.3f}-{max(layers(name)):.3f}'

    findings = [
        f'- **Schedule too short?** Stage 2 for {study["long_epochs"]} epochs instead of 30, probed every 10 epochs: '
        f'mIoU {min(miou[n] for n in checkpoints):.3f}-{max(miou[n] for n in checkpoints):.3f} along the run '
        f'(stage 1: {miou["stage1"]:.3f}); at the end {diff(checkpoints[-1], "stage2")} over the 30-epoch stage 2 '
        f'and still {diff(checkpoints[-1], "stage1")} under stage 1. Twice the schedule adds little and closes '
        'no gap.',
        f'- **Target normalisation?** LayerNorm-ed teacher targets (`model.target_norm=True`): '
        f'{diff("stage2 target LN", "stage2")} against the default stage 2: no effect.',
        f'- **Which layer the probe reads?** Token embedding, block outputs and final LayerNorm: stage 2 '
        f'{layer_range("stage2")}, stage 1 {layer_range("stage1")}, random init {layer_range("random-init")}. '
        + ('Stage 2\'s best layer stays below stage 1\'s worst, the token embedding included: the gap is in what '
           'the encoder learned, not in where the probe looks.' if max(layers('stage2')) < min(layers('stage1'))
           else 'The layers overlap: where the probe looks matters.'),
        f'- **A defect?** The student initialised from the stage-1 encoder and trained by stage 2 stays near its '
        f'teacher ({diff("stage2 student from stage1", "stage1")} against stage 1), the default stage 2 is above '
        f'random init ({diff("stage2", "random-init")}) and its losses fall (table below): the teacher is '
        'loaded and the student learns. No defect found.',
        '- **What remains**, consistent with every row but not tested directly: the class information of this '
        'demo sits in stage 1 because stage 1 regresses class codes (supervised by proxy); stage 2 can pass on only '
        'what the visible tokens predict about the masked ones, and in these synthetic rooms objects are placed '
        'independently of each other, so a masked object\'s class is not predictable from its context. On real '
        'scenes, where context predicts content, the paper finds stage 2 above stage 1 (Table 4); the demo cannot '
        'test that claim.', '']
    lines = ['| encoder (probe layer) | probe mIoU [95% interval] | minus stage 1 | minus stage 2 |',
             '|---|---|---|---|']
    for name, stats in study['summary'].items():
        lines.append(f'| {name} | {_interval(stats["miou"])} | {diff(name, "stage1") if name != "stage1" else ""} | '
                     f'{diff(name, "stage2") if name != "stage2" else ""} |')
    return findings + ['\n'.join(lines), '',
                       f'`{study["command"]}` on {study["cpu"]}, commit {(study["commit"] or "unknown")[:10]}'
                       + (' (uncommitted changes)' if study.get('dirty') else '') + f'; seeds {study["seeds"]}, '
                       'the demo\'s data and stage-1 checkpoints, paired by seed. "@N": the checkpoint after N epochs '
                       f'of the {study["long_epochs"]}-epoch run; "[layer]": the probe reads the token embedding '
                       '(before the transformer) or the output of a block (before the final LayerNorm) instead of '
                       'the final LayerNorm. The differences are against the stage-1 and stage-2 encoders read at '
                       'the final LayerNorm.', '']


def _colour_control_sentence(control: dict) -> str:
    vit, rgb = control['results']['random-vit'], control['results']['mean RGB']
    return (f'Measured (`{control["command"]}` on {control["cpu"]}, the demo\'s {control["frames"]["train"]} + '
            f'{control["frames"]["val"]} frames): random-ViT features averaged per object classify the '
            f'{vit["val_objects"]} validation objects at **{vit["accuracy"]:.2f}** accuracy (one linear layer fitted '
            f'on the {vit["train_objects"]} training objects), against **{vit["majority_accuracy"]:.2f}** for the '
            f'majority class; the objects\' mean colour alone reaches {rgb["accuracy"]:.2f}.')


def render(reports, paths, stand_in=None, make_time=None, picture=None, cross_reference=None, stage2_study=None,
           colour_control=None):
    """The page's markdown from the demo reports (the first gives the tables, the others are reruns), the
    optional random-ViT report, another machine's :func:`documented_values`, the stage-2 study and the colour
    control (benchmarks/demo_stage2_study.py, benchmarks/demo_colour_control.py)."""
    first = reports[0]
    s = first['settings']
    spread = run_to_run_spread(reports) if len(reports) > 1 else None
    machines = cross_machine(cross_reference, documented_values(render([first], paths))) if cross_reference else None
    fragile = machines['spread'] if machines else None
    level = f'{s["confidence"]:.0%}'
    out = ['# Demo results (`make demo`, CPU)', '',
           '<!-- Generated by tools/demo_report_to_docs.py from ' + ', '.join(paths) + '; do not edit by hand. -->',
           '',
           f'Measured: {_stamp(first)}. Command: `{s["command"]}`.' +
           (f' `time make demo` (environment installed): {make_time}.' if make_time else ''), '']
    if spread is not None:
        same = spread['differing'] == 0
        commits = {(r['environment']['commit'] or 'unknown')[:10] for r in reports}
        commands = {r['settings']['command'] for r in reports}
        if len(commits) == 1 and len(commands) == 1:
            runs = (f'{len(reports)} runs of the same command from clean work dirs on this machine '
                    f'({", ".join(r["environment"]["date"] for r in reports)})')
        else:  # e.g. a --methods run beside a plain `make demo` of another commit: their shared values compared
            runs = (f'{len(reports)} runs with the same settings from clean work dirs on this machine ('
                    + '; '.join(f'{r["environment"]["date"]}, commit {(r["environment"]["commit"] or "unknown")[:10]},'
                                f' `{r["settings"]["command"]}`' for r in reports) + ')')
        out += [f'**Run-to-run spread.** {runs}: '
                + ('every one of the ' f'{spread["compared"]} metrics and losses compared is **identical**.' if same
                   else f'{spread["differing"]} of {spread["compared"]} metrics and losses differ, by at most '
                        f'{spread["max_abs_difference"]:.4g}.')
                + (' Other CPU types give other numbers: see [Across machines](#across-machines).' if machines
                   else ''), '']
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
    out += ['## What this demo can and cannot show', '',
            '- **Stage 1 is supervised by proxy.** The default stand-in targets are a fixed random code of each '
            'pixel\'s *true class* plus noise (`configs/sam_mtp/labels/demo_class_targets.py`), so stage 1 regresses '
            'a noisy class label per region. "Stage 1 beats random init" in the probe is therefore close to built '
            'in: it shows that the pipeline carries the targets\' information into the encoder, not that SAM-MTP '
            'learns semantics without labels. Real DINOv2 features carry semantics too, but not a class code.',
            '- **The random-ViT control still carries class, through colour.** `--targets random-vit` replaces the '
            'class code by a seeded random ViT on the RGB frames, but every synthetic class has its own colour '
            '(`datasets/synthetic/rooms.py`, `CLASS_COLORS`), so its region features still tell the class. '
            + (_colour_control_sentence(colour_control) + ' ' if colour_control else '')
            + 'It is a weaker proxy, not a control without class information.',
            '- **Fine-tuning resolves little.** At 30 epochs on 12 scenes the segmentors learn little beyond wall and '
            'floor (per-class IoU below), so their pretrained - scratch intervals are wide and include 0; the probe '
            'is the sharper instrument here. 3DETR and GroupFree3D were dropped from the default after a pilot of 4 '
            'pairs (2026-12-01): neither showed a difference (3DETR AP25 pretrained - scratch -0.02 in both of its '
            'first two pairs) and 3DETR\'s runs did not fit the 20-minute budget beside the label-efficiency runs; '
            '`--tasks 3detr groupfree3d` adds them back.']
    if len(first.get('methods', {})) > 1:
        out += ['- **The method comparison favours the methods that regress the targets.** With class-coded '
                'stand-in targets, every method that regresses them (SAM-MTP\'s stages, the Table 3 / 4 rows, '
                'Bridge3D\'s region and scene distillation, and Bridge3D\'s text targets, whose class maps are the '
                'synthetic ground truth) is supervised by proxy, while Point-MAE reconstructs geometry only. A '
                'method beating Point-MAE here is therefore close to built in and says nothing about the paper\'s '
                '"+Point-MAE" rows; the comparisons among methods that see the same targets (SAM-MTP, Bridge3D, '
                'the ablation rows) are the ones this demo can inform, at toy scale.']
    out += ['']
    if len(first.get('methods', {})) > 1:
        task = s['tasks'][0]
        out += ['## Methods', '', report.methods_table(first['methods']),
                'Every method pretrains the same demo encoder per seed and is fine-tuned and probed like SAM-MTP; each '
                'is compared with scratch and with SAM-MTP ("pretrained" in fine-tuning, "stage2" in the probe), '
                'paired by seed. In one table: each method\'s mean over the seeds and its paired differences '
                f'({level} t-intervals; bold: the interval excludes 0), fine-tuned on all training scenes and in '
                'the frozen-feature probe (the full tables below have every metric):', '',
                report.methods_matrix(first, task, s['metrics'][task][0])]
    out += ['## Pretrained vs scratch, all training scenes', '', report.comparison_table(first['comparisons'], 1.0)]
    label_rows = [c for c in first['comparisons'] if c['task'] == s['label_task']]
    if s['label_fractions']:
        out += ['## Label efficiency', '',
                f'{s["label_task"]} fine-tuned on a seeded subset of the training scenes (the same subset for both '
                'runs of a pair; repeated so that every run trains the same number of iterations).', '',
                report.comparison_table(label_rows)]
        if picture:
            out += [f'![label efficiency]({picture})', '']
    iou = per_class_iou(first)
    if iou:
        out += ['Per-class IoU of the segmentation runs (all fractions, pretrained and scratch):', '']
        out += iou + ['']
    out += ['## Frozen-feature linear probe', '',
            'One linear layer on the frozen encoder\'s token features, fitted on the training scenes, predicts every '
            'point\'s semantic class on the validation scenes (`tools/linear_probe.py`, per-point mIoU / accuracy '
            'with mmdet3d\'s `seg_eval`); random init vs the stage-1 and stage-2 encoders of every seed, and stage 2 '
            'vs stage 1 (the paper\'s Table 4 claim: stage 2 improves on its stage-1 teacher).', '',
            report.probe_table(first['probe']), report.comparison_table(first['probe']['comparisons'])]
    if stage2_study:
        out += ['### Why stage 2 is below stage 1 here', '',
                'Stage 2 trains a *fresh* student to predict the frozen stage-1 encoder\'s features of the masked '
                '60 % of the tokens from the visible 40 % (L_token), and their mean from the visible tokens (L_ins). '
                'Small experiments on the demo\'s data and stage-1 checkpoints test the candidate explanations:', '']
        out += _stage2_study_section(stage2_study)
    out += ['## Reading', '', 'Generated from the intervals above: a difference is called only when its interval '
            'excludes 0.', ''] + ['- ' + t for t in report.reading(first['comparisons'] +
                                                                   first['probe']['comparisons'], fragile)] + ['']
    if machines:
        out += _cross_machine_section(first, cross_reference, machines)
    if stand_in is not None:
        out += ['## The same comparison with the random-ViT targets', '',
                f'`python tools/demo.py --targets {stand_in["settings"]["targets"]}` (not part of the default run; '
                f'measured {_stamp(stand_in)}): ' + stand_in['note'], '', _side_by_side(first, stand_in), '',
                'Reading (random-ViT targets' + ('; fragile marks use the cross-machine moves measured with the '
                                                 'default targets' if fragile else '') + '):', ''] + \
               ['- ' + t for t in report.reading(stand_in['comparisons'] + stand_in['probe']['comparisons'],
                                                 fragile)] + ['']
    out += ['## Pretraining losses (first logged -> last)', '', '| run | loss | first | last |', '|---|---|---|---|']
    for stage, losses in first['pretraining'].items():
        for name, (a, b) in losses.items():
            out.append(f'| {stage} | {name} | {a:.4f} | {b:.4f} |')
    out += ['', '## Time', '', _timing_table(first),
            'Wall seconds depend on the machine\'s load; CPU seconds add up every core\'s time.', '',
            '## Every run', '', report.markdown_table(report.summarize_runs(first['runs'], sorted(
                {m for ms in s['metrics'].values() for m in ms})), s['metrics'])]
    return '\n'.join(out)


def _load_json(path: str, what: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise ResultsPageError(f'{path}: cannot read the {what} ({err})')


def write_results_page(report_paths: Sequence[str], out: str, images_dir: str, stand_in_path: Optional[str] = None,
                       make_time: Optional[str] = None, cross_machine_path: Optional[str] = None,
                       stage2_study_path: Optional[str] = None, colour_control_path: Optional[str] = None) -> str:
    """Check the reports, copy the label-efficiency picture into ``images_dir`` and write the page to ``out``;
    returns its text. ``cross_machine_path``: the same command's page or report.json from another CPU type."""
    from projects.sam_mtp.labels.fileio import atomic_write_bytes
    reports = [load_report(p) for p in report_paths]
    for path, data in zip(report_paths[1:], reports[1:]):
        check_same_settings(reports[0], data, path)
    stand_in = load_report(stand_in_path) if stand_in_path else None
    reference = load_reference(cross_machine_path) if cross_machine_path else None
    study = _load_json(stage2_study_path, 'stage-2 study') if stage2_study_path else None
    control = _load_json(colour_control_path, 'colour control') if colour_control_path else None
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
    text = render(reports, list(report_paths), stand_in, make_time, picture, reference, study, control)
    atomic_write_bytes(out, text.encode())
    return text
