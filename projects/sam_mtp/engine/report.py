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
    values = [v for k, v in metrics.items() if k.endswith(suffix) and not k.startswith('m')
              and isinstance(v, (int, float)) and not math.isnan(v)]
    return float(np.mean(values)) if values else float('nan')


def summarize_runs(runs: Sequence[dict], metric_names: Sequence[str]) -> Dict[str, dict]:
    """Group runs by (task, init) and give mean, std and the per-seed values of each metric."""
    table: Dict[str, dict] = {}
    for run in runs:
        row = table.setdefault(f'{run["task"]}|{run["init"]}', dict(task=run['task'], init=run['init'],
                                                                   seeds=[], values={}))
        row['seeds'].append(run['seed'])
        for name in metric_names:
            if name in run['metrics']:
                row['values'].setdefault(name, []).append(run['metrics'][name])
    for row in table.values():
        row['mean'] = {k: float(np.mean(v)) for k, v in row['values'].items()}
        row['std'] = {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in row['values'].items()}
    return table


def markdown_table(table: Dict[str, dict], metric_names: Dict[str, Sequence[str]]) -> str:
    """One line per task and initialisation: mean ± std over seeds (and n) for the task's metrics."""
    lines = ['| task | init | metric | mean ± std (over seeds) | per seed |', '|---|---|---|---|---|']
    for row in sorted(table.values(), key=lambda r: (r['task'], r['init'] != 'pretrained')):
        for name in metric_names.get(row['task'], ()):
            if name not in row['mean']:
                continue
            per_seed = ', '.join(f'{v:.3f}' for v in row['values'][name])
            lines.append(f'| {row["task"]} | {row["init"]} | {name} | {row["mean"][name]:.3f} ± '
                         f'{row["std"][name]:.3f} (n={len(row["values"][name])}) | {per_seed} |')
    return '\n'.join(lines) + '\n'


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
