"""Reading training logs and metric files, summarising pretrained-vs-scratch runs and drawing the demo's
pictures (loss curves, a frame's points coloured by SAM-guided token and by a PCA of encoder features)."""
import glob
import json
import math
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

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
    """Markdown: one line per comparison (optionally only one fraction of the training scenes)."""
    rows = [c for c in comparisons if fraction is None or c['fraction'] == fraction]
    if not rows:
        return ''
    a, b = rows[0]['a_name'], rows[0]['b_name']
    level = f'{rows[0]["confidence"]:.0%}'
    lines = [f'| task | train scenes | metric | {a} | {b} | difference ({level} t-interval) | excludes 0 | pairs |',
             '|---|---|---|---|---|---|---|---|']
    for c in rows:
        d = c['diff']
        lines.append(f'| {c["task"]} | {c["fraction"]:.0%} | {c["metric"]} | {c["a_mean"]:.3f} | {c["b_mean"]:.3f} | '
                     f'{_signed(d["mean"])} [{_signed(d["lo"])}, {_signed(d["hi"])}] | '
                     f'{"**yes**" if d["excludes_zero"] else "no"} | {d["n"]} |')
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


def reading(comparisons: Sequence[dict]) -> List[str]:
    """One sentence per comparison that says only what its interval supports."""
    out = []
    for c in comparisons:
        d = c['diff']
        where = f'{c["task"]} {c["metric"]}' + ('' if c['fraction'] == 1.0 else f' ({c["fraction"]:.0%} of the '
                                                                                   'training scenes)')
        interval = f'{_signed(d["mean"])}, {c["confidence"]:.0%} interval [{_signed(d["lo"])}, {_signed(d["hi"])}], ' \
                   f'{d["n"]} pairs'
        if d['excludes_zero']:
            side = 'higher' if d['mean'] > 0 else 'lower'
            out.append(f'{where}: {c["a_name"]} is {side} than {c["b_name"]} ({interval}).')
        else:
            out.append(f'{where}: no difference between {c["a_name"]} and {c["b_name"]} resolved ({interval}; the '
                       'interval includes 0).')
    return out


def plot_label_efficiency(comparisons: Sequence[dict], task: str, metric: str, out_png: str) -> None:
    """The metric against the fraction of labelled training scenes, both initialisations (mean and t-interval
    over seeds), and below it their paired difference with its t-interval."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = sorted((c for c in comparisons if c['task'] == task and c['metric'] == metric),
                  key=lambda c: c['fraction'])
    if not rows:
        raise ValueError(f'no comparison of {task} {metric} to plot')
    x = np.array([100 * c['fraction'] for c in rows])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.2, 5.6), sharex=True,
                                      gridspec_kw=dict(height_ratios=(3, 2)))
    for side, colour in (('a', 'tab:blue'), ('b', 'tab:orange')):
        stats = [t_interval(c[side], c['confidence']) for c in rows]
        mean = np.array([s['mean'] for s in stats])
        err = np.array([[s['mean'] - s['lo'], s['hi'] - s['mean']] for s in stats]).T
        top.errorbar(x, mean, yerr=np.nan_to_num(err), marker='o', capsize=3, color=colour,
                     label=rows[0][f'{side}_name'])
    top.set_ylabel(metric)
    top.set_title(f'{task}: label efficiency ({rows[0]["confidence"]:.0%} t-intervals, n={rows[0]["diff"]["n"]})',
                  fontsize=9)
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    diff = [c['diff'] for c in rows]
    mean = np.array([d['mean'] for d in diff])
    err = np.array([[d['mean'] - d['lo'], d['hi'] - d['mean']] for d in diff]).T
    bottom.errorbar(x, mean, yerr=np.nan_to_num(err), marker='s', capsize=3, color='k')
    bottom.axhline(0, color='grey', lw=0.8)
    bottom.set_ylabel(f'{rows[0]["a_name"]} - {rows[0]["b_name"]}')
    bottom.set_xlabel('labelled training scenes (%)')
    bottom.set_xscale('log')
    bottom.set_xticks(x)
    bottom.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # only the measured fractions are labelled
    bottom.set_xticklabels([f'{v:g}' for v in x])
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_loss_curves(curves: Dict[str, Dict[str, List[float]]], out_png: str) -> None:
    """One panel per run: every logged loss scalar against the iteration."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.6), squeeze=False)
    for ax, (title, curve) in zip(axes[0], curves.items()):
        for name, values in curve.items():
            if name != 'iter' and len(values) == len(curve['iter']):
                ax.plot(curve['iter'], values, label=name)
        ax.set_title(title)
        ax.set_xlabel('iteration')
        ax.set_yscale('log')
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def pca_colors(features: np.ndarray) -> np.ndarray:
    """Project features (M, C) on their first three principal components, scaled to RGB in [0, 1]."""
    centred = features - features.mean(0, keepdims=True)
    if len(features) < 3:
        return np.full((len(features), 3), 0.5)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:3].T
    if proj.shape[1] < 3:
        proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
    lo, hi = proj.min(0), proj.max(0)
    return (proj - lo) / np.maximum(hi - lo, 1e-8)


def plot_token_pictures(points: np.ndarray, colors: np.ndarray, point_token: np.ndarray,
                        token_rgb: Dict[str, np.ndarray], out_png: str, title: str = '') -> None:
    """Top-down views of one frame: its RGB, its points coloured by SAM-guided token, and by the PCA colour
    of each token's features for every model in ``token_rgb`` (name -> (M, 3) colours)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = 2 + len(token_rgb)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.4))
    kept = point_token >= 0
    rng = np.random.default_rng(0)
    palette = rng.uniform(0.15, 1.0, size=(int(point_token.max()) + 2, 3))
    views = [('RGB', colors / 255.0, np.ones_like(kept)),
             (f'SAM-guided tokens ({len(np.unique(point_token[kept]))})', palette[point_token.clip(0)], kept)]
    views += [(f'PCA of {name} features', rgb[point_token.clip(0)], kept) for name, rgb in token_rgb.items()]
    for ax, (name, rgb, mask) in zip(axes, views):
        ax.scatter(points[mask, 0], points[mask, 1], c=rgb[mask], s=0.6, linewidths=0)
        ax.set_title(name, fontsize=9)
        ax.set_aspect('equal')
        ax.axis('off')
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
