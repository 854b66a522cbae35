"""Statistics of a label split: SAM regions per frame, points per region, tokens per frame, group sizes.

They size the tokenizer (docs/pretraining.md, "Token budget"): a region with at least ``min_points`` of the
frame's sampled points becomes one token, so "tokens per frame" is what ``max_tokens`` must cover for every
region to keep its own token. ``tools/label_stats.py`` prints the table, writes the JSON and a PNG histogram.
"""
import datetime
import os
import platform
from typing import Dict, Optional, Sequence

import numpy as np

from ..formats.frame_labels import load_label_info

PERCENTILES = (5, 50, 95, 99)


def _frame_counts(path: str) -> np.ndarray:
    """Points per region id (index 0 = no region) of one frame file."""
    with np.load(path, allow_pickle=False) as data:
        region = data['point_region']
        num_regions = data['region_feat'].shape[0]
    return np.bincount(region.astype(np.int64), minlength=num_regions + 1)


def _summary(values) -> dict:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return dict(count=0)
    out = dict(count=int(v.size), mean=float(v.mean()), min=float(v.min()), max=float(v.max()))
    out.update({f'p{p}': float(np.percentile(v, p)) for p in PERCENTILES})
    return out


def _stamp(root: str) -> dict:
    """Date, machine and commit of a measurement."""
    from ...engine.provenance import git_commit
    commit = git_commit(short=True)[0]
    return dict(date=datetime.datetime.now().isoformat(timespec='seconds'), machine=platform.platform(),
                cpus=os.cpu_count(), commit=commit, label_root=root)


def compute_label_stats(root: str, split: str = 'train', min_points: int = 16,
                        caps: Sequence[int] = (64, 128, 256), max_frames: Optional[int] = None,
                        workers: int = 0) -> dict:
    """Statistics of ``<root>/<split>_labels.pkl`` and its frame files (see the module docstring)."""
    info = load_label_info(os.path.join(root, f'{split}_labels.pkl'))
    items = info['data_list'][:max_frames] if max_frames else info['data_list']
    paths = [os.path.join(root, item['label_path']) for item in items]
    if workers > 0:
        import multiprocessing as mp

        from ..fileio import worker_start_method
        with mp.get_context(worker_start_method()).Pool(workers) as pool:
            counts = pool.map(_frame_counts, paths, chunksize=16)
    else:
        counts = [_frame_counts(p) for p in paths]
    regions_per_frame = np.array([len(c) - 1 for c in counts])
    points_per_region = np.concatenate([c[1:] for c in counts]) if counts else np.zeros(0)
    tokens_per_frame = np.array([int((c[1:] >= min_points).sum()) for c in counts])
    unassigned = np.array([c[0] / max(c.sum(), 1) for c in counts])
    small_points = np.array([c[1:][c[1:] < min_points].sum() / max(c.sum(), 1) for c in counts])
    meta = info['metainfo']
    group_counts = np.asarray(meta.get('group_counts') or [], np.int64)
    cap_rows = []
    for cap in caps:
        over = tokens_per_frame > cap
        merged = np.maximum(tokens_per_frame - cap, 0)
        cap_rows.append(dict(max_tokens=int(cap), frames_over_cap=float(over.mean()) if len(over) else 0.0,
                             regions_merged=float(merged.sum() / max(tokens_per_frame.sum(), 1))))
    return dict(
        stamp=_stamp(root), split=split, num_frames=len(paths), min_points=min_points,
        num_points_per_frame=meta.get('num_points'), num_groups=meta.get('num_groups'),
        sources=meta.get('sources'), dataset=meta.get('dataset'),
        regions_per_frame=_summary(regions_per_frame), tokens_per_frame=_summary(tokens_per_frame),
        points_per_region=_summary(points_per_region),
        unassigned_point_fraction=_summary(unassigned), small_region_point_fraction=_summary(small_points),
        regions_per_group=_summary(group_counts), group_counts=group_counts.tolist(), caps=cap_rows,
        max_tokens_covering_all_frames=int(tokens_per_frame.max(initial=0)),
        histograms=dict(regions_per_frame=regions_per_frame.tolist(), tokens_per_frame=tokens_per_frame.tolist(),
                        points_per_region=np.bincount(points_per_region.astype(np.int64)).tolist()))


def _fmt(v) -> str:
    return '-' if v is None else (f'{v:.0f}' if abs(v) >= 100 or float(v).is_integer() else f'{v:.3g}')


def format_tables(stats: dict) -> str:
    """The markdown tables of :func:`compute_label_stats`'s result (also readable from its JSON)."""
    s = stats['stamp']
    lines = [f'Label split `{stats["split"]}` of `{s["label_root"]}` ({stats["num_frames"]} frames, '
             f'{_fmt(stats["num_points_per_frame"])} points per frame, K = {stats["num_groups"]}); measured '
             f'{s["date"]} on {s["machine"]} ({s["cpus"]} CPUs), commit {s["commit"]}.', '',
             '| quantity | mean | min | p5 | p50 | p95 | p99 | max |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    rows = [('SAM regions per frame', 'regions_per_frame'),
            (f'tokens per frame (regions with >= {stats["min_points"]} points)', 'tokens_per_frame'),
            ('points per region', 'points_per_region'),
            ('fraction of points in no region', 'unassigned_point_fraction'),
            (f'fraction of points in regions below {stats["min_points"]} points', 'small_region_point_fraction'),
            ('regions per K-means group (split)', 'regions_per_group')]
    for title, key in rows:
        v = stats[key]
        if not v.get('count'):
            continue
        lines.append(f'| {title} | ' + ' | '.join(_fmt(v[k]) for k in ('mean', 'min', 'p5', 'p50', 'p95', 'p99',
                                                                         'max')) + ' |')
    lines += ['', '| max_tokens | frames over the cap | regions merged (no own token) |', '|---:|---:|---:|']
    for row in stats['caps']:
        lines.append(f'| {row["max_tokens"]} | {row["frames_over_cap"]:.2%} | {row["regions_merged"]:.2%} |')
    lines += ['', f'`max_tokens` covering every frame of this split: {stats["max_tokens_covering_all_frames"]} '
              '(the default `max_tokens=None` never caps).']
    return '\n'.join(lines) + '\n'


def plot_label_stats(stats: dict, path: str) -> None:
    """A PNG with histograms of regions and tokens per frame, points per region and regions per group."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    hist = stats['histograms']
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for ax, key, title in ((axes[0], 'regions_per_frame', 'SAM regions per frame'),
                           (axes[1], 'tokens_per_frame', f'tokens per frame (>= {stats["min_points"]} pts)')):
        values = np.asarray(hist[key])
        ax.hist(values, bins=min(50, max(int(values.max(initial=0)) + 1, 1)), color='tab:blue')
        ax.set_title(title)
        ax.set_xlabel('count')
        ax.set_ylabel('frames')
    for row in stats['caps']:
        axes[1].axvline(row['max_tokens'], color='tab:red', ls='--', lw=0.8)
    per_region = np.asarray(hist['points_per_region'], np.float64)
    sizes = np.repeat(np.arange(len(per_region)), per_region.astype(np.int64))
    if sizes.size:
        bins = np.unique(np.geomspace(1, max(sizes.max(), 2), 40).astype(int))
        axes[2].hist(np.maximum(sizes, 1), bins=bins, color='tab:green')
        axes[2].set_xscale('log')
    axes[2].axvline(stats['min_points'], color='tab:red', ls='--', lw=0.8)
    axes[2].set_title('points per region')
    axes[2].set_xlabel('points (log)')
    axes[2].set_ylabel('regions')
    groups = np.asarray(stats['group_counts'])
    axes[3].bar(np.arange(len(groups)), np.sort(groups)[::-1], color='tab:orange')
    axes[3].set_title('regions per K-means group (sorted)')
    axes[3].set_xlabel('group rank')
    fig.suptitle(f'{stats["stamp"]["label_root"]} [{stats["split"]}], {stats["num_frames"]} frames, '
                 f'{stats["stamp"]["date"]}', fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_label_stats(stats: dict, out_dir: str) -> Dict[str, str]:
    """``label_stats_<split>.{json,md,png}`` in ``out_dir``; returns their paths."""
    import json

    from ..fileio import atomic_write_bytes
    base = os.path.join(out_dir, f'label_stats_{stats["split"]}')
    paths = dict(json=base + '.json', markdown=base + '.md', png=base + '.png')
    atomic_write_bytes(paths['json'], (json.dumps(stats) + '\n').encode())
    atomic_write_bytes(paths['markdown'], format_tables(stats).encode())
    plot_label_stats(stats, paths['png'])
    return paths
