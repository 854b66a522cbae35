"""The demo's report: reading training logs and metric files, the paired statistics (per-seed differences and
their Student-t intervals), the markdown tables and the reading that says only what each interval supports, and
report.md / report.json's assembly. The pictures are drawn by :mod:`.plots`; where a run was made (machine,
commit) comes from :mod:`projects.sam_mtp.engine.provenance`."""
import datetime
import glob
import json
import math
import os
import os.path as osp
import platform
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .methods import REFERENCE

# mmengine's LoggerHook text lines: "Epoch(train)  [3][8/8]  ... loss: 0.2872  loss_distill: 0.2872 ..."
_TRAIN_LINE = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]|Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')
_SCALAR = re.compile(r'\b(loss[\w.]*):\s*([-+0-9.eE]+|nan|inf)')
# IndoorMetric's summary keys (mAP_0.25, mAR_0.50, ...); every other "<class>_AP_<iou>" key is a class.
_SUMMARY_KEY = re.compile(r'^m(AP|AR)_')


def parse_train_losses(log_path: str) -> Dict[str, List[float]]:
    """Loss scalars of every logged training iteration of an mmengine text log, keyed by name, plus 'iter'
    (global iteration index of each logged line)."""
    curves: Dict[str, List[float]] = {'iter': []}
    with open(log_path, errors='replace') as f:
        for line in f:
            match = _TRAIN_LINE.search(line)
            if match is None:
                continue
            if match.group(1) is not None:
                epoch, it, per_epoch = (int(match.group(k)) for k in (1, 2, 3))
                step = (epoch - 1) * per_epoch + it
            else:
                step = int(match.group(4))
            curves['iter'].append(step)
            for name, value in _SCALAR.findall(line):
                curves.setdefault(name, []).append(float(value))
    return curves


def find_log(work_dir: str) -> Optional[str]:
    """The newest ``<timestamp>/<timestamp>.log`` mmengine wrote in ``work_dir``."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))
    return logs[-1] if logs else None


def read_test_metrics(work_dir: str) -> Dict[str, float]:
    """Metrics of the newest ``tools/test.py`` run in ``work_dir`` (mmengine's ``<timestamp>.json``)."""
    files = sorted(f for f in glob.glob(osp.join(work_dir, '*', '*.json')) if 'vis_data' not in f)
    if not files:
        raise FileNotFoundError(f'{work_dir}: no metrics json written by tools/test.py')
    with open(files[-1]) as f:
        return json.load(f)


def mean_over_present_classes(metrics: Dict[str, float], suffix: str) -> float:
    """Mean of the per-class values ending in ``suffix`` that are not NaN.

    mmdet3d's IndoorMetric averages over all classes of the dataset, so a class absent from a small
    evaluation set turns its mAP into NaN; on the demo's few scenes we average over the classes present.
    """
    values = [v for k, v in metrics.items() if k.endswith(suffix) and not _SUMMARY_KEY.match(k)
              and isinstance(v, (int, float)) and not math.isnan(v)]
    return float(np.mean(values)) if values else float('nan')


def _fraction(run: dict) -> float:
    return float(run.get('fraction', 1.0))


def summarize_runs(runs: Sequence[dict], metric_names: Sequence[str]) -> Dict[str, dict]:
    """Group runs by (task, fraction of the training scenes, init): mean, sample std and per-seed values.

    Keys are ``'<task>|<init>'`` for runs on all training scenes and ``'<task>|<fraction>|<init>'`` otherwise.
    """
    table: Dict[str, dict] = {}
    for run in runs:
        fraction = _fraction(run)
        key = f'{run["task"]}|{run["init"]}' if fraction == 1.0 else f'{run["task"]}|{fraction:g}|{run["init"]}'
        row = table.setdefault(key, dict(task=run['task'], init=run['init'], fraction=fraction, seeds=[],
                                         values={}))
        row['seeds'].append(run['seed'])
        for name in metric_names:
            if name in run['metrics']:
                row['values'].setdefault(name, []).append(run['metrics'][name])
    for row in table.values():
        row['mean'] = {k: float(np.mean(v)) for k, v in row['values'].items()}
        row['std'] = {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in row['values'].items()}
    return table


def markdown_table(table: Dict[str, dict], metric_names: Dict[str, Sequence[str]]) -> str:
    """One line per task, fraction and initialisation: mean ± std over seeds (and n), and every seed's value."""
    lines = ['| task | train scenes | init | metric | mean ± std (over seeds) | per seed |',
             '|---|---|---|---|---|---|']
    for row in sorted(table.values(), key=lambda r: (r['task'], -r['fraction'], r['init'] != 'pretrained',
                                                     r['init'])):
        for name in metric_names.get(row['task'], ()):
            if name not in row['mean']:
                continue
            per_seed = ', '.join(f'{v:.3f}' for v in row['values'][name])
            lines.append(f'| {row["task"]} | {row["fraction"]:.0%} | {row["init"]} | {name} | '
                         f'{row["mean"][name]:.3f} ± {row["std"][name]:.3f} (n={len(row["values"][name])}) | '
                         f'{per_seed} |')
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------- statistics
def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean of ``values`` and its two-sided Student-t confidence interval.

    Returns ``dict(mean, lo, hi, n, excludes_zero)``; fewer than 2 values give NaN bounds and
    ``excludes_zero=False`` (one value says nothing about its spread).
    """
    from scipy import stats
    x = np.asarray(values, dtype=float)
    n = int(len(x))
    if n == 0:
        return dict(mean=float('nan'), lo=float('nan'), hi=float('nan'), n=0, excludes_zero=False)
    mean = float(x.mean())
    if n < 2:
        return dict(mean=mean, lo=float('nan'), hi=float('nan'), n=n, excludes_zero=False)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    lo, hi = mean - half, mean + half
    return dict(mean=mean, lo=lo, hi=hi, n=n, excludes_zero=bool(lo > 0 or hi < 0))


def paired_comparisons(runs: Sequence[dict], metric_names: Dict[str, Sequence[str]], a: str = 'pretrained',
                       b: str = 'scratch', confidence: float = 0.95) -> List[dict]:
    """Differences ``a - b`` of runs paired by (task, fraction, seed), with a t-interval of their mean.

    Runs of the two initialisations with the same seed share data order, augmentation and head
    initialisation, so each pair's difference removes what the seed alone does. A pair whose metric is NaN
    on either side (e.g. no class present) is left out of that metric. One entry per (task, fraction,
    metric) that has at least one pair: ``task, fraction, metric, seeds, a, b`` (per-pair values),
    ``a_mean, b_mean, diff`` (the :func:`t_interval` of the differences) and ``confidence``.
    """
    by_key: Dict[tuple, Dict[str, dict]] = {}
    for run in runs:
        if run['init'] in (a, b):
            by_key.setdefault((run['task'], _fraction(run), run['seed']), {})[run['init']] = run
    out = []
    for task in sorted({k[0] for k in by_key}):
        for fraction in sorted({k[1] for k in by_key if k[0] == task}, reverse=True):
            seeds = sorted(k[2] for k in by_key if k[:2] == (task, fraction) and len(by_key[k]) == 2)
            for name in metric_names.get(task, ()):
                pairs = [(s, by_key[(task, fraction, s)][a]['metrics'].get(name, float('nan')),
                          by_key[(task, fraction, s)][b]['metrics'].get(name, float('nan'))) for s in seeds]
                pairs = [p for p in pairs if not (math.isnan(p[1]) or math.isnan(p[2]))]
                if not pairs:
                    continue
                va, vb = [p[1] for p in pairs], [p[2] for p in pairs]
                out.append(dict(task=task, fraction=fraction, metric=name, seeds=[p[0] for p in pairs], a=va, b=vb,
                                a_name=a, b_name=b, a_mean=float(np.mean(va)), b_mean=float(np.mean(vb)),
                                diff=t_interval(np.subtract(va, vb), confidence), confidence=confidence))
    return out


def _signed(value: float) -> str:
    return 'nan' if math.isnan(value) else f'{value:+.3f}'


def comparison_table(comparisons: Sequence[dict], fraction: Optional[float] = None) -> str:
    """Markdown: one line per comparison (optionally only one fraction of the training scenes); every line names
    its own pair (``a`` vs ``b``), since one table may hold several pairs (the probe's)."""
    rows = [c for c in comparisons if fraction is None or c['fraction'] == fraction]
    if not rows:
        return ''
    level = f'{rows[0]["confidence"]:.0%}'
    lines = [f'| task | train scenes | metric | a vs b | mean a | mean b | difference a - b ({level} t-interval) | '
             'excludes 0 | pairs |', '|---|---|---|---|---|---|---|---|---|']
    for c in rows:
        d = c['diff']
        lines.append(f'| {c["task"]} | {c["fraction"]:.0%} | {c["metric"]} | {c["a_name"]} vs {c["b_name"]} | '
                     f'{c["a_mean"]:.3f} | {c["b_mean"]:.3f} | {_signed(d["mean"])} [{_signed(d["lo"])}, '
                     f'{_signed(d["hi"])}] | {"**yes**" if d["excludes_zero"] else "no"} | {d["n"]} |')
    return '\n'.join(lines) + '\n'


def probe_table(probe: dict) -> str:
    """Markdown: the linear probe's mIoU and accuracy per encoder (mean and t-interval over seeds)."""
    lines = ['| encoder | mIoU | mIoU interval | acc | acc interval | per seed mIoU |', '|---|---|---|---|---|---|']
    for init, stats in probe['summary'].items():
        per_seed = ', '.join(f'{r["metrics"]["miou"]:.3f}' for r in probe['runs'] if r['init'] == init)
        m, acc = stats['miou'], stats['acc']
        lines.append(f'| {init} | {m["mean"]:.3f} | [{m["lo"]:.3f}, {m["hi"]:.3f}] | {acc["mean"]:.3f} | '
                     f'[{acc["lo"]:.3f}, {acc["hi"]:.3f}] | {per_seed} |')
    return '\n'.join(lines) + '\n'


def verdict_margin(diff: dict) -> float:
    """How far an interval must move for its verdict to change: the distance of its nearer bound from 0 (the
    bound that would cross 0 first; for an interval that includes 0, the shift that would make it exclude 0)."""
    return min(abs(diff['lo']), abs(diff['hi']))


def reading(comparisons: Sequence[dict], spread: Optional[Dict[Tuple[str, str], float]] = None) -> List[str]:
    """One sentence per comparison that says only what its interval supports.

    ``spread`` ((task, metric) -> how far interval bounds moved between two CPU types, see
    :func:`projects.sam_mtp.demo.results_page.cross_machine`) marks a sentence *fragile* when its interval's
    nearer bound lies within that spread (:func:`verdict_margin`): another CPU type may give the other verdict.
    """
    out = []
    for c in comparisons:
        d = c['diff']
        where = f'{c["task"]} {c["metric"]}' + ('' if c['fraction'] == 1.0 else f' ({c["fraction"]:.0%} of the '
                                                                                   'training scenes)')
        interval = f'{_signed(d["mean"])}, {c["confidence"]:.0%} interval [{_signed(d["lo"])}, {_signed(d["hi"])}], ' \
                   f'{d["n"]} pairs'
        if d['excludes_zero']:
            side = 'higher' if d['mean'] > 0 else 'lower'
            text = f'{where}: {c["a_name"]} is {side} than {c["b_name"]} ({interval}).'
        else:
            text = (f'{where}: no difference between {c["a_name"]} and {c["b_name"]} resolved ({interval}; the '
                    'interval includes 0).')
        limit = (spread or {}).get((c['task'], c['metric']))
        if limit is not None and d['n'] > 1 and verdict_margin(d) <= limit:
            text += (f' **Fragile**: the nearer bound is {verdict_margin(d):.3f} from 0, within the {limit:.3f} '
                     'that bounds of this metric moved between CPU types.')
        out.append(text)
    return out


# ---------------------------------------------------------------------------------------------- report.{md,json}
def environment(repo_root: str) -> dict:
    """Where and with what the report was made: date, machine, commit, library versions."""
    import mmdet3d
    import mmengine
    import torch

    from projects.sam_mtp.engine.provenance import cpu_model, git_commit, memory_gib
    commit, dirty = git_commit(where=repo_root)
    return dict(date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
                machine=dict(cpu=cpu_model(), cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                             omp_wait_policy=os.environ.get('OMP_WAIT_POLICY'),
                             memory_gib=memory_gib(), platform=platform.platform(), python=platform.python_version()),
                commit=commit, dirty=dirty,
                versions=dict(torch=torch.__version__, mmengine=mmengine.__version__, mmdet3d=mmdet3d.__version__))


def methods_table(methods: Dict[str, dict]) -> str:
    """Markdown: every method of the report, its paper row, its run labels and its demo pretraining configs."""
    lines = ['| method | stands for | fine-tuning / probe label | demo pretraining configs (in order) |',
             '|---|---|---|---|']
    for name, m in methods.items():
        lines.append(f'| {name} | {m["paper"]} | {m["finetune_label"]} / {m["probe_label"]} | '
                     + ' → '.join(f'`{c}`' for c in m['configs']) + ' |')
    return '\n'.join(lines) + '\n'


def paired_diff(comparisons: Sequence[dict], a: str, b: str, task: str, metric: str,
                fraction: float = 1.0) -> Optional[dict]:
    """The ``a - b`` interval of (task, metric, fraction), read from ``b - a`` (bounds negated) when only that pair
    was compared; None when neither was."""
    for c in comparisons:
        if (c['task'], c['metric'], c['fraction']) != (task, metric, fraction):
            continue
        if (c['a_name'], c['b_name']) == (a, b):
            return c['diff']
        if (c['a_name'], c['b_name']) == (b, a):
            d = c['diff']
            return dict(d, mean=-d['mean'], lo=-d['hi'], hi=-d['lo'])
    return None


def _interval_cell(diff: Optional[dict]) -> str:
    if diff is None:
        return '-'
    text = f'{_signed(diff["mean"])} [{_signed(diff["lo"])}, {_signed(diff["hi"])}]'
    return f'**{text}**' if diff['excludes_zero'] else text


def methods_matrix(summary: dict, task: str, metric: str, probe_metric: str = 'miou') -> str:
    """Markdown: one row per method with its fine-tuning ``metric`` on ``task`` (all training scenes) and its
    probe ``probe_metric``, each as the mean over seeds and the paired differences against no pretraining
    (scratch / random init) and against SAM-MTP, with their intervals (bold: the interval excludes 0)."""
    comparisons, probe = summary['comparisons'], summary['probe']
    reference = summary['methods'][REFERENCE]
    confidence = (comparisons or probe['comparisons'])[0]['confidence']
    level = f'{confidence:.0%}'
    lines = [f'| method | {task} {metric} | - scratch ({level} interval) | - SAM-MTP | probe {probe_metric} | '
             f'- random init | - SAM-MTP |', '|---|---|---|---|---|---|---|']
    for name, m in summary['methods'].items():
        tuned = [r['metrics'].get(metric, float('nan')) for r in summary['runs']
                 if r['init'] == m['finetune_label'] and r['task'] == task and _fraction(r) == 1.0]
        probed = [r['metrics'].get(probe_metric, float('nan')) for r in probe['runs'] if r['init'] == m['probe_label']]
        versus = name != REFERENCE
        lines.append(' | '.join([
            f'| {name}', f'{np.mean(tuned):.3f}' if tuned else '-',
            _interval_cell(paired_diff(comparisons, m['finetune_label'], 'scratch', task, metric)),
            _interval_cell(paired_diff(comparisons, m['finetune_label'], reference['finetune_label'], task, metric))
            if versus else '',
            f'{np.mean(probed):.3f}' if probed else '-',
            _interval_cell(paired_diff(probe['comparisons'], m['probe_label'], 'random-init', 'probe', probe_metric)),
            _interval_cell(paired_diff(probe['comparisons'], m['probe_label'], reference['probe_label'], 'probe',
                                   probe_metric)) if versus else '']) + ' |')
    return '\n'.join(lines) + '\n'


def report_markdown(summary: dict) -> str:
    """report.md: the paired comparison, the label-efficiency table, the probe and the per-seed values."""
    s = summary['settings']
    level = f'{s["confidence"]:.0%}'
    lines = [f'# sam_mtp demo: pretrained (stage 2) vs scratch ({s["targets"]} targets)', '', summary['note'], '',
             f'{len(s["seeds"])} pairs (seeds {s["seeds"]}); pair s fine-tunes seed s\'s own stage-1 + stage-2 '
             'pretraining and a scratch encoder with the same fine-tuning seed. Differences are pretrained - '
             f'scratch per pair; the {level} interval is Student-t over the pairs, so it includes the variance of '
             'pretraining, fine-tuning and the subset of scenes.', '',
             '## Fine-tuning on all training scenes', '',
             comparison_table(summary['comparisons'], 1.0)]
    if len(summary.get('methods', {})) > 1:
        at = lines.index('## Fine-tuning on all training scenes')
        lines[at:at] = ['## Methods', '', methods_table(summary['methods']), 'Every method is compared with scratch '
                        'and with SAM-MTP ("pretrained" in fine-tuning, "stage2" in the probe), paired by seed.', '',
                        methods_matrix(summary, s['tasks'][0], s['metrics'][s['tasks'][0]][0])]
    label_rows = [c for c in summary['comparisons'] if c['task'] == s['label_task']]
    if s['label_fractions']:
        lines += ['## Label efficiency', '', f'{s["label_task"]} fine-tuned on a seeded subset of the training '
                  'scenes (the same subset for both runs of a pair, repeated to the same number of iterations).',
                  '', comparison_table(label_rows)]
    probe = summary['probe']
    lines += ['## Frozen-feature linear probe (per-point semantics)', '', probe_table(probe),
              comparison_table(probe['comparisons'])]
    lines += ['## Reading', ''] + ['- ' + t for t in reading(summary['comparisons'] + probe['comparisons'])]
    lines.append('')
    metrics = dict(s['metrics'])
    lines += ['## Every run', '', markdown_table(summarize_runs(summary['runs'], sorted(
        {m for ms in metrics.values() for m in ms})), metrics)]
    lines += ['Pictures: ' + ', '.join(summary['pictures'].values()), '']
    return '\n'.join(lines)
