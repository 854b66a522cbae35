"""Offline label generation: frames -> per-frame label files (pass a) -> K-means groups + split info (pass b).

Outputs under ``out_dir`` (label files in the format of :mod:`.format`)::

    <scene>/<frame_id:06d>.npz              per-frame labels (region_group = -1 until the merge)
    label_settings.json                     the output settings the label files were made with (reruns)
    <split>_labels.pkl                      split info (mmengine BaseDataset format, relative label paths)
    <split>_groups.json                     K, feature dim, group counts and weights, how they were made
    <split>_group_centroids.npy             (K, D) unit-norm centroids (reuse them for other splits)
    region_maps/<scene>/<frame_id:06d>.png  uint16 region-id map of each frame (scene segments, inspection)
    _work/group_features/<scene>/<frame_id:06d>.npy   float16 max-pooled region features (pass a -> b)
    _work/<split>/shards/shard-<I>-of-<N>.json        shard reports (done marker, failures, timings)

Fault tolerance: every file is written atomically and the frame ``.npz`` last, so a frame is finished exactly
when its ``.npz`` (and sidecars) exist, validate and carry the fingerprint of this run's output settings; a rerun
skips finished frames and redoes corrupt ones. A rerun under other settings is refused before any frame or model
is loaded (:func:`prepare_label_dir`) unless ``overwrite``, which redoes the frames of other settings; files are
replaced atomically and a frame counts as finished only with the new fingerprint, so an interrupted overwrite
never leaves old frames that pass for new ones. Per-frame failures are logged, counted by kind and stored in the
shard report, never abort the run.
"""
import glob
import json
import logging
import os
import sys
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from ..fileio import atomic_save_npy, atomic_write_bytes
from ..fileio import worker_start_method as _start_method
from ..formats.frame_labels import (SETTINGS_ARRAY, LabelFormatError, frame_settings_fingerprint, group_weights, load_frame_labels,
                     read_frame_settings_fingerprint, save_frame_labels, save_label_info)
from ..formats.frames import SKIP_KINDS, FrameData, FrameError, FrameRecord, check_depth_scale, load_frame, scene_axis_align
from ..geometry import frame_points, frame_seed
from .grouping import KeyedSample, assign_groups, frame_sample_keys, spherical_kmeans
from ..runner.output_dir import OutputDirError, check_writable, settings_fingerprint, source_settings, stale_output_message
from .pooling import pool_region_features
from ..runner.sharding import resolve_device, select_shard

DEFAULT_LABEL_CFG = dict(
    frame_stride=25,          # keep frames whose ScanNet id is a multiple of this
    num_points=20000,         # points per frame (sampled with replacement when fewer are valid)
    mask_size=(480, 640),     # (H, W) of the mask / region map; the colour image is resized to it
    depth_scale=1000.0,       # raw depth units per metre (ScanNet: millimetres)
    max_depth=None,           # metres; farther depth pixels are dropped (None: keep all)
    num_groups=32,            # K of the K-means pseudo-classes
    seed=0,
    save_region_maps=True,    # needed for scene segments
    max_failure_fraction=0.05,
    io_workers=2,             # threads reading frames ahead of the models
    kmeans=dict(max_samples=131072, n_init=3, max_iter=100, tol=1e-6, device='cpu'),
    dataset_name='ScanNet',
)
STAGES = ('read', 'mask', 'feature', 'geometry', 'pooling', 'write')
# label_cfg entries that change a frame file / the groups (output settings, labels/output_dir.py). The others
# choose frames (frame_stride: a frame's file is the same at any stride), describe (dataset_name) or steer the
# run (workers, failure budget, kmeans.device).
FRAME_SETTING_KEYS = ('num_points', 'mask_size', 'depth_scale', 'max_depth', 'seed')
GROUP_SETTING_KEYS = ('num_groups', 'kmeans')


def merge_label_cfg(cfg: Optional[dict]) -> dict:
    out = dict(DEFAULT_LABEL_CFG, kmeans=dict(DEFAULT_LABEL_CFG['kmeans']))
    for key, value in (cfg or {}).items():
        if key not in DEFAULT_LABEL_CFG:
            raise KeyError(f'unknown label setting {key!r}; known: {sorted(DEFAULT_LABEL_CFG)}')
        if key == 'kmeans':
            unknown = set(value) - set(DEFAULT_LABEL_CFG['kmeans'])
            if unknown:
                raise KeyError(f'unknown kmeans setting(s) {sorted(unknown)}')
            out['kmeans'].update(value)
        else:
            out[key] = value
    out['mask_size'] = tuple(int(v) for v in out['mask_size'])
    return out


class LabelPaths:
    """Where everything of one label root lives (see the module docstring)."""

    def __init__(self, out_dir: str):
        self.root = out_dir

    @staticmethod
    def frame_rel(scene: str, frame_id: int) -> str:
        return f'{scene}/{frame_id:06d}.npz'

    def frame(self, scene: str, frame_id: int) -> str:
        return os.path.join(self.root, scene, f'{frame_id:06d}.npz')

    def group_features(self, scene: str, frame_id: int) -> str:
        return os.path.join(self.root, '_work', 'group_features', scene, f'{frame_id:06d}.npy')

    def region_map(self, scene: str, frame_id: int) -> str:
        return os.path.join(self.root, 'region_maps', scene, f'{frame_id:06d}.png')

    def shard_dir(self, split: str) -> str:
        return os.path.join(self.root, '_work', split, 'shards')

    def shard_report(self, split: str, index: int, total: int) -> str:
        return os.path.join(self.shard_dir(split), f'shard-{index}-of-{total}.json')

    def merge_lock(self, split: str) -> str:
        return os.path.join(self.root, '_work', split, 'merge.lock')

    def info(self, split: str) -> str:
        return os.path.join(self.root, f'{split}_labels.pkl')

    def settings(self) -> str:
        return os.path.join(self.root, 'label_settings.json')

    def groups(self, split: str) -> str:
        return os.path.join(self.root, f'{split}_groups.json')

    def centroids(self, split: str) -> str:
        return os.path.join(self.root, f'{split}_group_centroids.npy')


def label_settings(mask_source, feature_source, label_cfg: Optional[dict] = None, axis_aligned: bool = False) -> dict:
    """The output settings of a label run (labels/output_dir.py): the two sources (configs or objects), the
    label_cfg entries of FRAME_SETTING_KEYS and GROUP_SETTING_KEYS, and whether points are axis-aligned."""
    cfg = merge_label_cfg(label_cfg)
    kept = {k: cfg[k] for k in FRAME_SETTING_KEYS + GROUP_SETTING_KEYS}
    kept['kmeans'] = {k: v for k, v in cfg['kmeans'].items() if k != 'device'}
    return dict(mask_source=source_settings(mask_source), feature_source=source_settings(feature_source),
                label_cfg=kept, axis_aligned=bool(axis_aligned))


def frame_settings_of(settings: dict) -> dict:
    """The part of :func:`label_settings` that decides a frame file (the groups part is redone by every merge)."""
    return dict(settings, label_cfg={k: v for k, v in settings['label_cfg'].items() if k not in GROUP_SETTING_KEYS})


def read_label_settings(out_dir: str) -> Optional[dict]:
    """The recorded ``label_settings.json`` of a label root (None when there is none)."""
    path = LabelPaths(out_dir).settings()
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            recorded = json.load(f)
        if not isinstance(recorded, dict) or not {'settings', 'fingerprint'} <= set(recorded):
            raise ValueError('expected a dict with "settings" and "fingerprint"')
    except (OSError, ValueError) as err:
        raise OutputDirError(f'{path}: cannot read the recorded label settings ({type(err).__name__}: {err}); '
                             f'rerun with --overwrite to record these settings and redo the frames') from err
    return recorded


def _split_files(out_dir: str) -> List[str]:
    """Split-level outputs and shard reports of every split: they describe the frames of the recorded settings."""
    names = ('*_labels.pkl', '*_groups.json', '*_group_centroids.npy', os.path.join('_work', '*', 'shards', '*.json'))
    return sorted(p for name in names for p in glob.glob(os.path.join(glob.escape(out_dir), name)))


def prepare_label_dir(out_dir: str, settings: dict, overwrite: bool = False) -> Tuple[str, str]:
    """Before any frame or model is loaded: check that ``out_dir`` is writable, refuse a label root made with other
    (or unrecorded) settings unless ``overwrite``, and record ``settings`` in ``label_settings.json``.

    Under ``overwrite`` with changed settings the split files and shard reports of the old settings are deleted
    (frames are redone by the run, which takes only frames with the new fingerprint as finished). Returns the
    fingerprints ``(frames, all)`` for :class:`LabelGenerator` and :func:`merge_split`.
    """
    check_writable(out_dir)
    paths = LabelPaths(out_dir)
    fingerprint = settings_fingerprint(settings)
    try:
        recorded = read_label_settings(out_dir)
    except OutputDirError:
        if not overwrite:
            raise
        recorded = None  # a corrupt record is replaced, its frames redone
    has_labels = os.path.isdir(os.path.join(out_dir, '_work')) or bool(_split_files(out_dir))
    if (recorded is None and has_labels) or (recorded is not None and recorded['fingerprint'] != fingerprint):
        if not overwrite:
            raise OutputDirError(stale_output_message(out_dir, 'labels', recorded and recorded['settings'], settings,
                                                      '--out-dir'))
        stale = _split_files(out_dir)
        for path in stale:
            os.remove(path)
        print_log(f'{out_dir}: --overwrite: labels of other settings are redone; removed {len(stale)} split files '
                  f'and shard reports of the old settings', logger='current', level=logging.WARNING)
    frames_fingerprint = settings_fingerprint(frame_settings_of(settings))
    if recorded is None or recorded['fingerprint'] != fingerprint:
        atomic_write_bytes(paths.settings(), (json.dumps(
            dict(fingerprint=fingerprint, frames_fingerprint=frames_fingerprint, settings=settings,
                 tool='tools/generate_sam_labels.py'), indent=1, sort_keys=True) + '\n').encode())
    return frames_fingerprint, fingerprint


def _save_png16(path: str, image: np.ndarray) -> None:
    import cv2
    if image.max(initial=0) > 65535:
        raise ValueError(f'{path}: more than 65535 regions cannot be stored in a 16-bit PNG')
    ok, buf = cv2.imencode('.png', image.astype(np.uint16))
    if not ok:
        raise RuntimeError(f'{path}: could not encode the region map')
    atomic_write_bytes(path, buf.tobytes())


def read_region_map(path: str) -> np.ndarray:
    import cv2
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: region map does not exist (generate labels with save_region_maps=True)')
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2:
        raise ValueError(f'{path}: region map cannot be decoded as a single-channel PNG')
    return image.astype(np.int32)


class LabelGenerationError(RuntimeError):
    """The split cannot be merged (shards missing, too many failures); the message says what to do."""


@dataclass
class FrameOutput:
    arrays: Dict[str, np.ndarray]
    group_features: np.ndarray
    region_map: np.ndarray
    timings: Dict[str, float] = field(default_factory=dict)


@dataclass
class Failure:
    key: str
    kind: str
    message: str


class LabelGenerator:
    """Runs the mask and feature sources over frames and writes the per-frame labels.

    Args:
        mask_source: callable ``(image at mask size, record) -> int32 region map`` (see mask_sources.py).
        feature_source: callable ``(RGB image) -> (D, h, w) tensor`` with ``feature_dim`` (feature_sources.py).
        out_dir: label root.
        label_cfg: overrides of :data:`DEFAULT_LABEL_CFG`.
        axis_align_root: folder with ``<scene>/<scene>.txt`` meta files (ScanNet ``scans/``); None: the
            points stay in the frame of the poses.
        frames_fingerprint: the frames fingerprint of :func:`prepare_label_dir`, stored in every frame file;
            a frame with another (or no) fingerprint is not finished and is redone. None: no fingerprint is
            written or checked (any valid frame counts as finished).
    """

    def __init__(self, mask_source, feature_source, out_dir: str, label_cfg: Optional[dict] = None,
                 axis_align_root: Optional[str] = None, frames_fingerprint: Optional[str] = None):
        self.mask_source = mask_source
        self.feature_source = feature_source
        self.cfg = merge_label_cfg(label_cfg)
        self.paths = LabelPaths(out_dir)
        self.axis_align_root = axis_align_root
        self.frames_fingerprint = frames_fingerprint
        self._axis_align: Dict[str, Optional[np.ndarray]] = {}

    # ------------------------------------------------------------------ one frame
    def axis_align(self, scene: str) -> Optional[np.ndarray]:
        if scene not in self._axis_align:
            self._axis_align[scene] = scene_axis_align(self.axis_align_root, scene)
        return self._axis_align[scene]

    def read(self, record: FrameRecord) -> FrameData:
        return load_frame(record, self.cfg['depth_scale'])

    def process(self, frame: FrameData, timings: Optional[Dict[str, float]] = None) -> FrameOutput:
        """Labels of one loaded frame (no file is written). Raises FrameError('no_mask') when the mask source
        finds no region."""
        import cv2
        timings = {} if timings is None else timings
        record = frame.record
        height, width = self.cfg['mask_size']
        tic = time.perf_counter()
        image = frame.color
        if image.shape[:2] != (height, width):
            shrink = image.shape[0] > height
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        region_map = np.asarray(self.mask_source(image, record))
        if region_map.shape != (height, width):
            raise RuntimeError(f'{type(self.mask_source).__name__} returned a {region_map.shape} map for a '
                               f'{(height, width)} image')
        region_map = region_map.astype(np.int32, copy=False)
        num_regions = int(region_map.max(initial=0))
        timings['mask'] = time.perf_counter() - tic
        if num_regions == 0:
            raise FrameError('no_mask', record.color_path, f'{type(self.mask_source).__name__} found no mask')

        tic = time.perf_counter()
        if getattr(self.feature_source, 'requires_record', False):
            features = self.feature_source(frame.color, record)
        else:
            features = self.feature_source(frame.color)
        timings['feature'] = time.perf_counter() - tic

        tic = time.perf_counter()
        points = frame_points(frame, region_map, self.cfg['num_points'],
                              frame_seed(self.cfg['seed'], record.scene, record.frame_id),
                              self.axis_align(record.scene), self.cfg['max_depth'])
        timings['geometry'] = time.perf_counter() - tic

        tic = time.perf_counter()
        mean, peak = pool_region_features(features, region_map, num_regions)
        mean, peak = mean.cpu().numpy(), peak.cpu().numpy()
        area = np.bincount(region_map.ravel(), minlength=num_regions + 1)[1:].astype(np.int32)
        timings['pooling'] = time.perf_counter() - tic
        arrays = dict(points=points['points'], colors=points['colors'], point_region=points['point_region'],
                      region_feat=mean.astype(np.float16), region_group=np.full(num_regions, -1, np.int32),
                      region_area=area, point_pixel=points['point_pixel'])
        return FrameOutput(arrays, peak.astype(np.float16), region_map, timings)

    def write(self, record: FrameRecord, output: FrameOutput) -> None:
        """Sidecars first, the frame file last: its presence marks the frame finished."""
        scene, fid = record.scene, record.frame_id
        if self.cfg['save_region_maps']:
            _save_png16(self.paths.region_map(scene, fid), output.region_map)
        atomic_save_npy(self.paths.group_features(scene, fid), output.group_features)
        arrays = output.arrays
        if self.frames_fingerprint is not None:
            arrays = dict(arrays, **{SETTINGS_ARRAY: np.array(self.frames_fingerprint)})
        save_frame_labels(self.paths.frame(scene, fid), arrays)

    def is_done(self, record: FrameRecord) -> bool:
        """True when the frame's files exist, are valid and were made with this run's settings."""
        return self.frame_state(record) == 'done'

    def frame_state(self, record: FrameRecord) -> str:
        """'done', 'missing', 'other_settings' (another or no settings fingerprint) or 'corrupt' (a corrupt or
        partial set of files, logged); all but 'done' are redone."""
        scene, fid = record.scene, record.frame_id
        path = self.paths.frame(scene, fid)
        if not os.path.exists(path):
            return 'missing'
        try:
            arrays = load_frame_labels(path)
            if (self.frames_fingerprint is not None
                    and frame_settings_fingerprint(arrays) != self.frames_fingerprint):
                return 'other_settings'
            feats = np.load(self.paths.group_features(scene, fid), allow_pickle=False)
            if feats.shape[0] != arrays['region_feat'].shape[0] or feats.dtype != np.float16:
                raise ValueError(f'group features have shape {feats.shape} / {feats.dtype} for '
                                 f'{arrays["region_feat"].shape[0]} regions')
            if self.cfg['save_region_maps'] and not os.path.isfile(self.paths.region_map(scene, fid)):
                raise ValueError('region map is missing')
        except (LabelFormatError, OSError, ValueError) as err:
            print_log(f'{record.key}: redoing the frame, its label files are incomplete or corrupt ({err})',
                      logger='current', level=logging.WARNING)
            return 'corrupt'
        return 'done'

    # ------------------------------------------------------------------ a shard
    def _loaded(self, records: Sequence[FrameRecord]) -> Iterator[Tuple[FrameRecord, object, float]]:
        """(record, FrameData or FrameError, read seconds) in order, read ahead by a thread pool."""
        def read(record):
            tic = time.perf_counter()
            try:
                return record, self.read(record), time.perf_counter() - tic
            except FrameError as err:
                return record, err, time.perf_counter() - tic

        workers = int(self.cfg['io_workers'])
        if workers <= 0:
            yield from (read(r) for r in records)
            return
        with ThreadPoolExecutor(workers) as pool:
            pending = []
            it = iter(records)
            for record in it:
                pending.append(pool.submit(read, record))
                if len(pending) > 2 * workers:
                    yield pending.pop(0).result()
            for fut in pending:
                yield fut.result()

    def run(self, records: Sequence[FrameRecord], split: str, shard: Tuple[int, int] = (0, 1),
            progress: bool = True, fail_after: Optional[int] = None) -> dict:
        """Pass (a) for one shard: label every owned, unfinished frame and write the shard report.

        ``fail_after`` (tests): raise after that many frames were written, like a killed job.
        """
        index, total = shard
        check_depth_scale(records, self.cfg['depth_scale'])  # before any frame: a wrong scale spoils every one
        mine = select_shard(records, index, total)
        states = [self.frame_state(r) for r in mine]
        todo = [r for r, state in zip(mine, states) if state != 'done']
        other = states.count('other_settings')
        print_log(f'shard {index}/{total} of split {split!r}: {len(mine)} frames, {len(mine) - len(todo)} '
                  f'already finished, {len(todo)} to do'
                  + (f' ({other} made with other settings are redone)' if other else ''), logger='current')
        failures: List[Failure] = []
        totals = defaultdict(float)
        written = 0
        bar = None
        if progress and todo:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(len(todo), file=sys.stderr)
        start = time.time()

        def fail(record: FrameRecord, err: Exception) -> None:
            if isinstance(err, FrameError):
                failures.append(Failure(record.key, err.kind, str(err)))
                level = logging.INFO if err.kind in SKIP_KINDS else logging.WARNING
                print_log(f'{record.key}: skipped ({err.kind}): {err}', logger='current', level=level)
            else:  # a bug or a model error on one frame must not stop 78k frames
                failures.append(Failure(record.key, 'error', f'{type(err).__name__}: {err}'))
                print_log(f'{record.key}: failed ({type(err).__name__}: {err})', logger='current',
                          level=logging.ERROR)

        def timed_write(record: FrameRecord, output: FrameOutput) -> float:
            tic = time.perf_counter()
            self.write(record, output)
            return time.perf_counter() - tic

        def collect(job) -> None:
            nonlocal written
            record, future, timings = job
            try:
                timings['write'] = future.result()
            except Exception as err:
                fail(record, err)
                return
            written += 1
            for k, v in timings.items():
                totals[k] += v
            if fail_after is not None and written >= fail_after:
                raise RuntimeError(f'simulated kill after {written} frames')

        # Writing (compression, fsync) overlaps with the models of the next frame in one writer thread; at
        # most two frames wait, so memory stays bounded.
        pending = deque()
        with ThreadPoolExecutor(1) as writer:
            for record, loaded, read_time in self._loaded(todo):
                timings = dict(read=read_time)
                try:
                    if isinstance(loaded, FrameError):
                        raise loaded
                    output = self.process(loaded, timings)
                except Exception as err:
                    fail(record, err)
                else:
                    pending.append((record, writer.submit(timed_write, record, output), timings))
                while len(pending) > 2 or (pending and pending[0][1].done()):
                    collect(pending.popleft())
                if bar is not None:
                    bar.update()
            while pending:
                collect(pending.popleft())
        if bar is not None:
            sys.stderr.write('\n')
        kinds = Counter(f.kind for f in failures)
        counted = sum(v for k, v in kinds.items() if k not in SKIP_KINDS)
        report = dict(
            split=split, shard=[index, total], num_frames=len(mine), already_done=len(mine) - len(todo),
            written=written, failures=[vars(f) for f in failures], failure_kinds=dict(kinds),
            failure_fraction=counted / max(len(mine), 1), seconds=time.time() - start,
            mean_stage_seconds={k: v / max(written, 1) for k, v in totals.items()})
        atomic_write_bytes(self.paths.shard_report(split, index, total), json.dumps(report, indent=1).encode())
        print_log(summarize_report(report), logger='current')
        return report


def summarize_report(report: dict) -> str:
    kinds = ', '.join(f'{k}: {v}' for k, v in sorted(report['failure_kinds'].items())) or 'none'
    stages = ', '.join(f'{k} {1000 * v:.0f} ms' for k, v in report['mean_stage_seconds'].items())
    return (f'shard {report["shard"][0]}/{report["shard"][1]}: {report["written"]} frames written, '
            f'{report["already_done"]} already finished, failures/skips: {kinds} '
            f'(failure fraction {report["failure_fraction"]:.3f}); per frame: {stages or "-"}')


# ---------------------------------------------------------------------- pass (b): merge
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


def all_shards_reported(paths: LabelPaths, split: str, total: int) -> bool:
    return all(os.path.isfile(paths.shard_report(split, i, total)) for i in range(total))


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
    counted = sum(v for k, v in kinds.items() if k not in SKIP_KINDS)
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
        with mp.get_context(_start_method()).Pool(workers, _set_worker_centroids, (centroids, )) as pool:
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


def try_merge_lock(paths: LabelPaths, split: str) -> bool:
    """Take the split's merge lock (first finisher of the last shard merges); False if someone holds it."""
    lock = paths.merge_lock(split)
    os.makedirs(os.path.dirname(lock), exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, 'w') as f:
        f.write(json.dumps(dict(pid=os.getpid(), host=os.uname().nodename, time=time.time())))
    return True


def release_merge_lock(paths: LabelPaths, split: str) -> None:
    lock = paths.merge_lock(split)
    if os.path.exists(lock):
        os.remove(lock)

