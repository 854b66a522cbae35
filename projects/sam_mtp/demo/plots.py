"""The demo's pictures: the label-efficiency curve, the pretraining loss curves, and one frame's points coloured by
SAM-guided token and by a PCA of encoder features."""
from typing import Dict, List, Sequence

import numpy as np

from .report import t_interval


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


def draw_token_pictures(label_root: str, model_config: str, checkpoint: str, checkpoint_name: str,
                        out_png: str) -> None:
    """One val frame (the one with most regions): its points coloured by SAM-guided token and by a PCA of the
    features of ``checkpoint``'s encoder (key prefix ``backbone.``) and of a random-init encoder, both built from
    ``model_config``'s ``model.tokenizer`` / ``model.backbone``."""
    import os.path as osp

    import torch
    from mmdet3d.registry import MODELS
    from mmengine.config import Config

    import projects.sam_mtp  # noqa: F401
    from projects.sam_mtp.engine.checkpoint import load_state_strict, read_checkpoint_state, strip_prefix
    from projects.sam_mtp.labels.formats.frame_labels import load_frame_labels, load_label_info
    info = load_label_info(osp.join(label_root, 'val_labels.pkl'))
    item = max(info['data_list'], key=lambda d: d['num_regions'])
    frame = load_frame_labels(osp.join(label_root, item['label_path']))
    cfg = Config.fromfile(model_config)
    points = torch.from_numpy(frame['points'])[None]
    region = torch.from_numpy(frame['point_region']).long()[None]
    token_rgb = {}
    for name, ckpt in ((checkpoint_name, checkpoint), ('random-init', None)):
        torch.manual_seed(0)
        tokenizer, backbone = MODELS.build(cfg.model.tokenizer).eval(), MODELS.build(cfg.model.backbone).eval()
        if ckpt:
            state = strip_prefix(read_checkpoint_state(ckpt, 'stage-2', 'the token pictures')[1], 'backbone.')
            load_state_strict(backbone, state, ckpt, 'the demo encoder', shown_prefix='backbone.')
        with torch.no_grad():
            tokens = tokenizer(points - points.mean(1, keepdim=True), region)
            feats = backbone(tokens)[0][~tokens.padding_mask[0]].numpy()
        token_rgb[name] = pca_colors(feats)
    plot_token_pictures(frame['points'], frame['colors'].astype(float), tokens.point_token[0].numpy(), token_rgb,
                        out_png, title=f'{item["scene_id"]} frame {item["frame_id"]}')
