"""Scene-segment files for mmdet3d-format datasets: the samples of info files, the sharded, resumable run of a
segmenter over them (labels/runner/jobs.py), one function per dataset. ``tools/make_scene_segments.py`` is the
command line over this module.

Samples are the entries of mmdet3d info files (``data_list[i].lidar_points.lidar_path`` names
``<points_dir>/<sample>.bin``); every sample gets ``<segments_dir>/<sample>.bin`` and its sidecar ``<sample>.json``
(labels/formats/scene_segments.py) from the registered segmenter of ``segment_cfg`` (``segmenters.py``).

Runner: samples are sharded by name; a sample is finished when its ``.bin`` holds one id per point and its sidecar
names a method of this run and carries the fingerprint of this run's output settings for that method (reruns skip
it); files are written atomically (sidecar first, ``.bin`` last); a failing sample is logged with its name,
counted by kind and skipped; the shard report ``<segments_dir>/_work/shard-I-of-N.json`` keeps failures and
per-sample timings (model time = the mask source's; the rest is this code's). More failures than
``max_failure_fraction`` make the tool exit with status 1.

Reruns (labels/runner/output_dir.py): before any model is built the output folder is probed for writing, and a
folder holding segment files of this run's methods made with other (or unrecorded) settings is refused with one
line naming the differing settings, unless ``overwrite``; then those files are redone, each replaced atomically,
and files made with these settings are kept (an interrupted overwrite resumes).
"""
import os
import time
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from ..formats.scene_segments import (
    SEGMENTS_FOLDER,
    count_points,
    load_scene_points,
    read_segment_meta,
    save_scene_segments,
    segment_file,
)
from ..runner.jobs import ShardJob, ShardOutcome, run_shard
from ..runner.output_dir import OutputDirError, check_writable, settings_fingerprint, stale_output_message
from ..runner.sharding import select_shard
from .segmenters import SegmentError, SegmentJob, build_segmenter, segmenter_class

GEOMETRIC = 'GeometricSegmenter'


def segment_output_settings(segment_cfg: dict, mask_source=None, labels_dir: Optional[str] = None,
                            fallback_cfg: Optional[dict] = None, points_load_dim: int = 6) -> Dict[str, dict]:
    """Per method this run can write: the output settings of its files (labels/runner/output_dir.py), from the
    configs alone (no model is built). ``segment_cfg`` merged over its segmenter's defaults (paths left out), what
    decides the region maps (the mask source or, with ``labels_dir``, the label root's recorded mask settings),
    ``points_load_dim``; the geometric fallback's files have ``fallback_cfg``'s."""
    cls = segmenter_class(segment_cfg)
    cfg = cls.merge_cfg(segment_cfg)
    primary = dict(segment_cfg={k: v for k, v in cfg.items() if k not in cls.path_keys},
                   points_load_dim=points_load_dim, **cls.region_map_settings(mask_source, labels_dir))
    settings = {cls.method: primary}
    if fallback_cfg:
        fallback = segmenter_class(fallback_cfg)
        if fallback.method != 'geometric':
            raise ValueError(f'fallback_cfg must use {GEOMETRIC}, got {fallback.__name__}')
        settings.setdefault('geometric', dict(fallback_cfg=fallback.merge_cfg(fallback_cfg),
                                              points_load_dim=points_load_dim))
    return settings


# ---------------------------------------------------------------------------------------------------- samples
def jobs_from_infos(info_files: Sequence[str], data_root: str, points_dir: Optional[str] = None) -> List[SegmentJob]:
    """One job per sample of mmdet3d info files (v2 format: ``metainfo`` + ``data_list``), in listing order;
    a sample listed twice is kept once."""
    import mmengine
    points_dir = points_dir or os.path.join(data_root, 'points')
    jobs: Dict[str, SegmentJob] = {}
    for info_file in info_files:
        if not os.path.isfile(info_file):
            raise FileNotFoundError(f'{info_file}: info file does not exist')
        data = mmengine.load(info_file)
        if not isinstance(data, dict) or 'data_list' not in data:
            raise ValueError(f'{info_file}: not an mmdet3d v2 info file (a dict with "data_list"); convert it with '
                             "mmdet3d's tools/dataset_converters/update_infos_to_v2.py")
        for i, item in enumerate(data['data_list']):
            lidar_path = (item.get('lidar_points') or {}).get('lidar_path')
            if not lidar_path:
                raise ValueError(f'{info_file}: data_list[{i}] has no lidar_points.lidar_path')
            name = os.path.splitext(os.path.basename(lidar_path))[0]
            path = lidar_path if os.path.isabs(lidar_path) else os.path.join(points_dir, lidar_path)
            if name in jobs and os.path.normpath(jobs[name].points_path) != os.path.normpath(path):
                raise ValueError(f'{info_file}: sample {name} is listed with two point files, '
                                 f'{jobs[name].points_path} and {path}')
            jobs.setdefault(name, SegmentJob(name, path, item))
    return list(jobs.values())



# ---------------------------------------------------------------------------------------------------- runner
def _fingerprint_matches(meta: dict, method_settings: Dict[str, dict]) -> bool:
    expected = method_settings.get(meta.get('method'))
    return expected is not None and meta.get('settings_fingerprint') == settings_fingerprint(expected)


def check_segment_settings(jobs: Sequence[SegmentJob], segments_dir: str, method_settings: Dict[str, dict],
                           overwrite: bool = False) -> None:
    """Before any model: raise OutputDirError (one line, the differing settings) when a segment file of ``jobs``
    was made by a method of this run with other or unrecorded settings, unless ``overwrite``. Files of another
    method are left to the run (``method_mismatch``)."""
    if overwrite:
        return
    stale = []
    for job in jobs:
        path = segment_file(segments_dir, job.name)
        if not os.path.isfile(path):
            continue
        meta = read_segment_meta(path) or {}
        if meta.get('method') in method_settings and not _fingerprint_matches(meta, method_settings):
            old = meta.get('output_settings') if 'settings_fingerprint' in meta else None
            stale.append((job.name, old, method_settings[meta['method']]))
    if stale:
        name, old, new = stale[0]
        files = f'{len(stale)} segment file' + ('s' if len(stale) > 1 else '')
        raise OutputDirError(stale_output_message(segments_dir, f'{files} (e.g. {name})', old, new, '--segments-dir'))


class SceneSegmentJob(ShardJob):
    """The samples as the runner's items: one segmenter run on each sample's points, its files written.

    ``method_settings`` (:func:`segment_output_settings`): recorded in every sidecar, and a file counts as finished
    only with its method's fingerprint; ``overwrite`` then redoes only files that are not finished. Without it
    nothing is recorded and ``overwrite`` redoes every file."""
    unit = 'samples'

    def __init__(self, segmenter, segments_dir: str, overwrite: bool = False, points_load_dim: int = 6,
                 method_settings: Optional[Dict[str, dict]] = None):
        self.segmenter, self.segments_dir, self.overwrite = segmenter, segments_dir, overwrite
        self.points_load_dim, self.method_settings = points_load_dim, method_settings
        self.methods = getattr(segmenter, 'methods', {segmenter.method})
        self.timer = getattr(segmenter, 'mask_timer', None)
        self.methods_written = Counter()
        self.name = f'scene segments ({segmenter.method}) -> {segments_dir}'

    def state(self, job: SegmentJob) -> str:
        """``done`` for a finished segment file of ``job`` made by a method of this run (with this run's settings
        for it, when ``method_settings`` is given); SegmentError for a file that disagrees with the sample (unless
        ``overwrite``, which redoes it)."""
        path = segment_file(self.segments_dir, job.name)
        if not os.path.isfile(path):
            return 'missing'
        if self.overwrite and self.method_settings is None:
            return 'overwrite'
        try:
            num_points = count_points(job.points_path, self.points_load_dim)
        except (FileNotFoundError, ValueError):
            return 'bad_points'  # the processing reports the point file's problem
        size = os.path.getsize(path)
        if size != 8 * num_points:
            if self.overwrite:
                return 'point_count_mismatch'
            raise SegmentError('point_count_mismatch', job.name, f'{path} has {size / 8:g} segment ids but '
                               f'{job.points_path} has {num_points} points; the points changed since the segments '
                               'were made: rerun with --overwrite')
        meta = read_segment_meta(path)
        method = meta.get('method') if meta else None
        if method not in self.methods:
            if self.overwrite:
                return 'method_mismatch'
            raise SegmentError('method_mismatch', job.name, f'{path} was made by method {method!r}, this run makes '
                               f'{sorted(self.methods)}; rerun with --overwrite to replace it')
        # other settings: refused before the run (check_segment_settings) unless overwrite, which redoes them
        if self.method_settings is None or _fingerprint_matches(meta, self.method_settings):
            return 'done'
        return 'other_settings'

    def load(self, job: SegmentJob) -> np.ndarray:
        try:
            return load_scene_points(job.points_path, self.points_load_dim)
        except FileNotFoundError as err:
            raise SegmentError('missing_points', job.name, str(err)) from err
        except ValueError as err:
            raise SegmentError('bad_points', job.name, str(err)) from err

    def process(self, job: SegmentJob, points: np.ndarray, stats: Dict[str, float]) -> Tuple[np.ndarray, dict]:
        tic = time.perf_counter()
        model_before = self.timer.seconds if self.timer is not None else 0.0
        labels, meta = self.segmenter(job, points)
        if len(labels) != len(points):  # a segmenter bug must never write a file LoadSceneSegments refuses
            raise SegmentError('error', job.name, f'{len(labels)} segment ids for {len(points)} points')
        meta = dict(meta, sample=job.name, points_file=job.points_path, num_points=int(len(points)),
                    num_segments=int(labels.max(initial=-1)) + 1, assigned_fraction=round(
                        float((labels >= 0).mean()), 4) if len(labels) else 0.0, settings=self.segmenter.settings,
                    tool='tools/make_scene_segments.py')
        meta.setdefault('method', self.segmenter.method)
        if self.method_settings is not None:
            meta.update(output_settings=self.method_settings[meta['method']],
                        settings_fingerprint=settings_fingerprint(self.method_settings[meta['method']]))
        stats.update(segment=time.perf_counter() - tic, num_points=len(points),
                     model=(self.timer.seconds if self.timer is not None else 0.0) - model_before)
        return labels, meta

    def write(self, job: SegmentJob, output: Tuple[np.ndarray, dict]) -> None:
        labels, meta = output
        save_scene_segments(segment_file(self.segments_dir, job.name), labels, meta)
        self.methods_written[meta['method']] += 1
        print_log(f'{job.name}: {meta["num_segments"]} segments ({meta["method"]}), {meta["assigned_fraction"]:.1%} '
                  f'of {meta["num_points"]} points assigned', logger='current')

    def report_path(self, shard: Tuple[int, int]) -> str:
        return os.path.join(self.segments_dir, '_work', f'shard-{shard[0]}-of-{shard[1]}.json')

    def _timings(self, outcome: ShardOutcome) -> Dict[str, dict]:
        timings = {}
        for name, stats in outcome.stats.items():
            seconds = stats['read'] + stats['segment'] + stats['write']
            timings[name] = dict(seconds=round(seconds, 4), model_seconds=round(stats['model'], 4),
                                 non_model_seconds=round(seconds - stats['model'], 4), num_points=stats['num_points'])
        return timings

    def report(self, outcome: ShardOutcome) -> dict:
        timings = self._timings(outcome)
        done = list(timings.values())
        return dict(
            method=self.segmenter.method, shard=list(outcome.shard), num_samples=outcome.num_items,
            written=outcome.written, already_finished=outcome.already_done, methods_written=dict(self.methods_written),
            failures=[dict(sample=f.key, kind=f.kind, message=f.message) for f in outcome.failures],
            failure_kinds=outcome.failure_kinds, failure_fraction=outcome.failure_fraction,
            max_failure_fraction=outcome.max_failure_fraction, seconds=round(outcome.seconds, 2),
            settings=self.segmenter.settings, timings=timings,
            mean_seconds={k: round(float(np.mean([t[k] for t in done])), 4) if done else None
                          for k in ('seconds', 'model_seconds', 'non_model_seconds')})

    def summary(self, outcome: ShardOutcome) -> str:
        done = list(self._timings(outcome).values())
        mean = round(float(np.mean([t['non_model_seconds'] for t in done])), 4) if done else None
        return f'methods: {dict(self.methods_written) or "-"}; per sample {mean} s without the model'


def run_segment_jobs(jobs: Sequence[SegmentJob], segmenter, segments_dir: str, shard=(0, 1), overwrite: bool = False,
                     progress: bool = True, max_failure_fraction: float = 0.05, points_load_dim: int = 6,
                     method_settings: Optional[Dict[str, dict]] = None) -> dict:
    """Segment every job of ``shard`` that is not finished (:class:`SceneSegmentJob`); returns (and writes) the
    shard report."""
    job = SceneSegmentJob(segmenter, segments_dir, overwrite, points_load_dim, method_settings)
    return run_shard(job, jobs, shard, progress, max_failure_fraction)


# ---------------------------------------------------------------------------------------------------- the API
def make_scene_segments(data_root: str, info_files: Sequence[str], segment_cfg: dict, mask_source=None, *,
                        frames_root: Optional[str] = None, labels_dir: Optional[str] = None,
                        images_root: Optional[str] = None, transforms_dir: Optional[str] = None,
                        fallback_cfg: Optional[dict] = None, geometric_fallback: bool = False,
                        segments_dir: Optional[str] = None, points_dir: Optional[str] = None, shard=(0, 1),
                        overwrite: bool = False, progress: bool = True, max_failure_fraction: float = 0.05,
                        points_load_dim: int = 6) -> dict:
    """Segment files ``<segments_dir or data_root/scene_segments>/<sample>.bin`` of every sample of ``info_files``.

    ``segment_cfg`` names a registered segmenter (``type``, segmenters.py) and overrides its settings;
    ``mask_source`` is a registered mask-source config (e.g. ``SAMAutomaticMaskSource`` with a checkpoint path) or
    a callable; ``fallback_cfg`` (or ``geometric_fallback``) gives the samples without images geometric (NOT SAM)
    segments. Before the mask source is built, the output folder must be writable and hold no segment files of
    other settings (unless ``overwrite``; module docstring). Returns the shard report (failures, timings).
    """
    if geometric_fallback:
        fallback_cfg = dict(fallback_cfg or {}, type=GEOMETRIC)
    segments_dir = segments_dir or os.path.join(data_root, SEGMENTS_FOLDER)
    method_settings = segment_output_settings(segment_cfg, mask_source, labels_dir, fallback_cfg, points_load_dim)
    check_writable(segments_dir)
    jobs = jobs_from_infos(info_files, data_root, points_dir)
    check_segment_settings(select_shard(jobs, *shard), segments_dir, method_settings, overwrite)
    segmenter = build_segmenter(segment_cfg, data_root, mask_source, frames_root, labels_dir, images_root,
                                transforms_dir, fallback_cfg)
    return run_segment_jobs(jobs, segmenter, segments_dir, shard, overwrite, progress, max_failure_fraction,
                            points_load_dim, method_settings)


def make_scannet_segments(data_root: str, info_files: Sequence[str], frames_root: str, labels_dir: Optional[str] = None,
                          mask_source=None, segment_cfg: Optional[dict] = None, **kwargs) -> dict:
    """ScanNet (mmdet3d layout): SAM regions of ``frames_root/<scene>/`` (from ``labels_dir``'s region maps, or
    ``mask_source`` now) merged across views onto ``points/<scene>.bin``."""
    return make_scene_segments(data_root, info_files, dict(segment_cfg or {}, type='PosedFramesSegmenter'),
                               mask_source, frames_root=frames_root, labels_dir=labels_dir, **kwargs)


def make_sunrgbd_segments(data_root: str, info_files: Sequence[str], mask_source, segment_cfg: Optional[dict] = None,
                          **kwargs) -> dict:
    """SUN RGB-D (mmdet3d layout): SAM on ``sunrgbd_trainval/image/<idx>.jpg``, points projected with the info's
    ``depth2img`` (MATLAB 1-based pixels)."""
    cfg = dict(dict(image_dir=os.path.join('sunrgbd_trainval', 'image'), pixel_origin=1), **(segment_cfg or {}))
    return make_scene_segments(data_root, info_files, dict(cfg, type='SingleImageSegmenter'), mask_source, **kwargs)


def make_s3dis_segments(data_root: str, info_files: Sequence[str], images_root: str, mask_source,
                        segment_cfg: Optional[dict] = None, geometric_fallback: bool = False,
                        fallback_cfg: Optional[dict] = None, **kwargs) -> dict:
    """S3DIS (mmdet3d layout) with the Stanford 2D-3D-S images under ``images_root``; with
    ``geometric_fallback`` (or a ``fallback_cfg``) rooms without frames get geometric (NOT SAM) segments."""
    return make_scene_segments(data_root, info_files, dict(segment_cfg or {}, type='S3DIS2D3DSSegmenter'),
                               mask_source, images_root=images_root, fallback_cfg=fallback_cfg,
                               geometric_fallback=geometric_fallback or bool(fallback_cfg), **kwargs)


def make_geometric_segments(data_root: str, info_files: Sequence[str], segment_cfg: Optional[dict] = None,
                            **kwargs) -> dict:
    """Any mmdet3d-format dataset without images: geometric over-segmentation (NOT SAM)."""
    return make_scene_segments(data_root, info_files, dict(segment_cfg or {}, type=GEOMETRIC), **kwargs)
