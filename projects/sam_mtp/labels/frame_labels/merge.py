"""Pass (b) of the frame labels: K-means groups over a split's region features, group ids into every frame, the
split info and groups files (formats/frame_labels.py). Needs every shard of pass (a) finished or recorded as failed
(``tools/generate_sam_labels.py`` runs it after the last shard, or with ``--merge``)."""
import json
import os
import sys
from collections import Counter
from typing import Dict, Iterable, Iterator, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from ..fileio import atomic_save_npy, atomic_write_bytes, worker_start_method
from ..formats.frame_labels import (
    LabelFormatError,
    LabelPaths,
    group_weights,
    load_frame_labels,
    read_frame_settings_fingerprint,
    save_frame_labels,
    save_label_info,
)
from ..formats.frames import SKIP_KINDS, FrameRecord
from ..runner.jobs import budgeted_failures
from ..runner.sharding import resolve_device
from .grouping import KeyedSample, assign_groups, frame_sample_keys, spherical_kmeans
from .settings import merge_label_cfg


class LabelGenerationError(RuntimeError):
    """The split cannot be merged (shards missing, too many failures); the message says what to do."""


def read_shard_failures(paths: LabelPaths, split: str) -> Dict[str, dict]:
    """Failures recorded by every shard report of a split (latest report wins per frame)."""
    folder = paths.shard_dir(split)
    failures = {}
    if not os.path.isdir(folder):
        return failures
    reports = []
    for name in sorted(os.listdir(folder)):
        if name.endswith('.json'):
            path = os.path.join(folder, name)
            with open(path) as f:
                try:
                    reports.append((os.path.getmtime(path), json.load(f)))
                except json.JSONDecodeError as err:
                    raise ValueError(f'{path}: corrupt shard report ({err}); delete it and rerun that shard') from err
    for _, report in sorted(reports, key=lambda r: r[0]):
        for item in report['failures']:
            failures[item['key']] = item
    return failures


def _iter_group_features(paths: LabelPaths, done: Sequence[FrameRecord]) -> Iterator[Tuple[FrameRecord, np.ndarray]]:
    for record in done:
        path = paths.group_features(record.scene, record.frame_id)
        try:
            feats = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f'{path}: cannot read group features ({err}); rerun the generation (without '
                             f'--merge) to redo this frame') from err
        yield record, feats


_WORKER_CENTROIDS: Optional[np.ndarray] = None


def _set_worker_centroids(centroids: np.ndarray) -> None:
    global _WORKER_CENTROIDS
    _WORKER_CENTROIDS = centroids


def _assign_frame(args) -> Tuple[str, np.ndarray, int, int, bool]:
    """Worker: group ids of one frame; rewrite its label file atomically when they changed."""
    root, scene, frame_id = args
    centroids = _WORKER_CENTROIDS
    paths = LabelPaths(root)
    feats = np.load(paths.group_features(scene, frame_id), allow_pickle=False)
    groups = assign_groups(feats.astype(np.float32), centroids)
    path = paths.frame(scene, frame_id)
    arrays = load_frame_labels(path)
    if arrays['region_group'].shape != groups.shape:
        raise LabelFormatError(path, f'has {arrays["region_group"].shape[0]} regions but its group features '
                               f'{groups.shape[0]}; delete both and rerun the generation')
    changed = not np.array_equal(arrays['region_group'], groups)
    if changed:
        arrays['region_group'] = groups
        save_frame_labels(path, arrays)
    return f'{scene}/{frame_id}', groups, arrays['points'].shape[0], groups.shape[0], changed


def merge_split(out_dir: str, records: Sequence[FrameRecord], split: str, label_cfg: Optional[dict] = None,
                groups_from: Optional[str] = None, workers: int = 0, sources: Optional[dict] = None,
                progress: bool = True, frames_fingerprint: Optional[str] = None,
                labels_fingerprint: Optional[str] = None) -> dict:
    """Pass (b): K-means over the split's region features, group ids into every frame, info and groups files.

    Args:
        records: every frame of the split (as listed for the generation).
        groups_from: a ``<split>_groups.json`` of another split whose centroids are reused (e.g. val uses
            train's groups) instead of fitting new ones.
        workers: processes for the assignment/rewrite of the frame files (0: in this process).
        sources: description of the sources stored in the metainfo.
        frames_fingerprint, labels_fingerprint: those of :func:`prepare_label_dir`; with them every frame must
            carry the frames fingerprint (no merge of frames of other settings), and the metainfo records both.

    Returns the groups summary. Raises when frames are neither finished nor recorded as failed (shards still
    missing) or when failures exceed ``max_failure_fraction``.
    """
    cfg = merge_label_cfg(label_cfg)
    paths = LabelPaths(out_dir)
    failures = read_shard_failures(paths, split)
    done, failed, missing = [], [], []
    for r in records:
        if os.path.isfile(paths.frame(r.scene, r.frame_id)):
            done.append(r)
        elif r.key in failures:
            failed.append(failures[r.key])
        else:
            missing.append(r.key)
    if missing:
        raise LabelGenerationError(f'{out_dir}: {len(missing)} of {len(records)} frames of split {split!r} have '
                                   f'neither labels nor a recorded failure (e.g. {missing[:3]}); run the missing '
                                   f'shards first')
    kinds = Counter(f['kind'] for f in failed)
    counted = budgeted_failures(kinds, SKIP_KINDS)
    fraction = counted / max(len(records), 1)
    if fraction > cfg['max_failure_fraction']:
        raise LabelGenerationError(f'{out_dir}: {counted} of {len(records)} frames failed ({dict(kinds)}), fraction '
                           f'{fraction:.3f} > max_failure_fraction {cfg["max_failure_fraction"]}; see the shard '
                           f'reports in {paths.shard_dir(split)}')
    if not done:
        raise LabelGenerationError(f'{out_dir}: no frame of split {split!r} has labels')
    if frames_fingerprint is not None:
        other = [r.key for r in done
                 if read_frame_settings_fingerprint(paths.frame(r.scene, r.frame_id)) != frames_fingerprint]
        if other:
            raise LabelGenerationError(f'{out_dir}: {len(other)} of {len(done)} frames of split {split!r} were made '
                                       f'with other settings (e.g. {other[:3]}); run the generation (without '
                                       f'--merge) to redo them before merging')
    remove_stale_temporaries(out_dir, {r.scene for r in records})

    k = int(cfg['num_groups'])
    if groups_from is not None:
        with open(groups_from) as f:
            source_groups = json.load(f)
        centroids = np.load(os.path.join(os.path.dirname(groups_from), source_groups['centroids']))
        k = centroids.shape[0]
        how = dict(reused_from=os.path.basename(groups_from))
    else:
        sample = KeyedSample(int(cfg['kmeans']['max_samples']))
        for record, feats in _iter_group_features(paths, done):
            sample.add(feats, frame_sample_keys(cfg['seed'], record.scene, record.frame_id, len(feats)))
        km = cfg['kmeans']
        print_log(f'K-means: K={k} on {len(sample.result())} of {sample.seen} regions', logger='current')
        centroids = spherical_kmeans(sample.result().astype(np.float32), k, seed=cfg['seed'], n_init=km['n_init'],
                                     max_iter=km['max_iter'], tol=km['tol'], device=resolve_device(km['device']))
        how = dict(sampled_regions=int(min(sample.seen, km['max_samples'])), total_regions=int(sample.seen),
                   seed=cfg['seed'], n_init=km['n_init'], metric='cosine')

    jobs = [(out_dir, r.scene, r.frame_id) for r in done]
    counts = np.zeros(k, np.int64)
    per_frame = {}
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(jobs), file=sys.stderr)
    if workers > 0:
        import multiprocessing as mp
        with mp.get_context(worker_start_method()).Pool(workers, _set_worker_centroids, (centroids, )) as pool:
            results: Iterable = pool.imap(_assign_frame, jobs, chunksize=16)
            for res in results:
                per_frame[res[0]] = res
                if bar is not None:
                    bar.update()
    else:
        _set_worker_centroids(centroids)
        for job in jobs:
            res = _assign_frame(job)
            per_frame[res[0]] = res
            if bar is not None:
                bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    data_list = []
    for r in done:
        _, groups, num_points, num_regions, _ = per_frame[r.key]
        counts += np.bincount(groups, minlength=k)
        data_list.append(dict(scene_id=r.scene, frame_id=r.frame_id, label_path=paths.frame_rel(r.scene, r.frame_id),
                              num_points=int(num_points), num_regions=int(num_regions)))
    weights = group_weights(counts)
    feature_dim = int(centroids.shape[1])
    atomic_save_npy(paths.centroids(split), centroids.astype(np.float32))
    groups = dict(num_groups=k, feature_dim=feature_dim, group_counts=counts.tolist(),
                  group_weights=weights.tolist(), centroids=os.path.basename(paths.centroids(split)),
                  weight_formula='SAM-MTP: w = tau / sum(tau), tau = 1 - (n - n_min) / n_max over non-empty '
                  'groups; empty groups w = 0', **how)
    atomic_write_bytes(paths.groups(split), json.dumps(groups, indent=1).encode())
    metainfo = dict(
        dataset=cfg['dataset_name'], split=split, num_groups=k, feature_dim=feature_dim,
        group_counts=counts.tolist(), group_weights=weights.tolist(), groups_file=os.path.basename(paths.groups(split)),
        frame_stride=cfg['frame_stride'], num_points=cfg['num_points'], mask_size=list(cfg['mask_size']),
        seed=cfg['seed'], num_frames=len(records), num_labelled=len(done), skipped=dict(kinds),
        sources=sources or {}, settings_fingerprint=labels_fingerprint, frames_fingerprint=frames_fingerprint)
    save_label_info(paths.info(split), metainfo, data_list)
    changed = sum(1 for v in per_frame.values() if v[4])
    print_log(f'merged split {split!r}: {len(done)} labelled frames ({changed} rewritten), {len(failed)} '
              f'skipped/failed ({dict(kinds)}); {int(counts.sum())} regions in {k} groups; wrote '
              f'{paths.info(split)}', logger='current')
    return groups


def remove_stale_temporaries(out_dir: str, scenes) -> int:
    """Delete ``.tmp-*`` files a killed process left in the folders of ``scenes`` (safe at merge time: every
    frame of the split is finished, so no shard is writing there)."""
    paths = LabelPaths(out_dir)
    folders = []
    for scene in scenes:
        folders += [os.path.join(out_dir, scene), os.path.dirname(paths.region_map(scene, 0)),
                    os.path.dirname(paths.group_features(scene, 0))]
    removed = 0
    for folder in folders:
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.startswith('.tmp-'):
                    os.remove(os.path.join(folder, name))
                    removed += 1
    if removed:
        print_log(f'removed {removed} temporary files left by interrupted runs', logger='current')
    return removed
