"""Frame labels, pass (a): frames -> per-frame label files, sharded and resumable (labels/runner/jobs.py); the
whole run of ``tools/generate_sam_labels.py`` (:func:`generate_labels`). Pass (b), the K-means merge, is in
``merge.py``; the label root's layout in labels/formats/frame_labels.py.

Fault tolerance: every file is written atomically and the frame ``.npz`` last, so a frame is finished exactly
when its ``.npz`` (and sidecars) exist, validate and carry the fingerprint of this run's output settings; a rerun
skips finished frames and redoes corrupt ones. A rerun under other settings is refused before any frame or model
is loaded (:func:`~.settings.prepare_label_dir`) unless ``overwrite``, which redoes the frames of other settings;
files are replaced atomically and a frame counts as finished only with the new fingerprint, so an interrupted
overwrite never leaves old frames that pass for new ones. Per-frame failures are logged, counted by kind and
stored in the shard report, never abort the run.
"""
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from ..fileio import atomic_save_npy
from ..formats.frame_labels import (
    SETTINGS_ARRAY,
    LabelFormatError,
    LabelPaths,
    frame_settings_fingerprint,
    load_frame_labels,
    save_frame_labels,
    save_region_map,
)
from ..formats.frames import (
    SKIP_KINDS,
    FrameData,
    FrameError,
    FrameRecord,
    check_depth_scale,
    list_frames,
    load_frame,
    read_scene_list,
    scene_axis_align,
)
from ..geometry import frame_points, frame_seed
from ..runner.jobs import ShardJob, ShardOutcome, mean_stage_seconds, merge_after_last_shard, run_shard
from ..sources.mask_sources import TimedMaskSource
from .merge import merge_split
from .pooling import pool_region_features
from .settings import label_settings, merge_label_cfg, prepare_label_dir


@dataclass
class FrameOutput:
    arrays: Dict[str, np.ndarray]
    group_features: np.ndarray
    region_map: np.ndarray
    timings: Dict[str, float] = field(default_factory=dict)


class LabelGenerator:
    """Runs the mask and feature sources over frames and writes the per-frame labels.

    Args:
        mask_source: callable ``(image at mask size, record) -> int32 region map`` (sources/mask_sources.py).
        feature_source: callable ``(RGB image) -> (D, h, w) tensor`` with ``feature_dim``
            (sources/feature_sources.py).
        out_dir: label root.
        label_cfg: overrides of :data:`~.settings.DEFAULT_LABEL_CFG`.
        axis_align_root: folder with ``<scene>/<scene>.txt`` meta files (ScanNet ``scans/``); None: the
            points stay in the frame of the poses.
        frames_fingerprint: the frames fingerprint of :func:`~.settings.prepare_label_dir`, stored in every frame file;
            a frame with another (or no) fingerprint is not finished and is redone. None: no fingerprint is
            written or checked (any valid frame counts as finished).
    """

    def __init__(self, mask_source, feature_source, out_dir: str, label_cfg: Optional[dict] = None,
                 axis_align_root: Optional[str] = None, frames_fingerprint: Optional[str] = None):
        self.mask_source = mask_source
        self._masks = TimedMaskSource(mask_source)
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
        timings = {} if timings is None else timings
        record = frame.record
        tic = time.perf_counter()
        region_map = self._masks(frame.color, record, self.cfg['mask_size'])
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
            save_region_map(self.paths.region_map(scene, fid), output.region_map)
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

    def run(self, records: Sequence[FrameRecord], split: str, shard: Tuple[int, int] = (0, 1),
            progress: bool = True, fail_after: Optional[int] = None) -> dict:
        """Pass (a) for one shard: label every owned, unfinished frame and write the shard report
        (labels/runner/jobs.py). Frames are read ahead by ``io_workers`` threads; writing (compression, fsync)
        overlaps with the models of the next frame.

        ``fail_after`` (tests): raise after that many frames were written, like a killed job.
        """
        check_depth_scale(records, self.cfg['depth_scale'])  # before any frame: a wrong scale spoils every one
        return run_shard(FrameLabelJob(self, split), records, shard, progress, self.cfg['max_failure_fraction'],
                         read_workers=int(self.cfg['io_workers']), write_behind=True, fail_after=fail_after)


class FrameLabelJob(ShardJob):
    """The frames of one split as the runner's items (labels/runner/jobs.py)."""
    unit = 'frames'
    skip_kinds = SKIP_KINDS

    def __init__(self, generator: LabelGenerator, split: str):
        self.generator, self.split = generator, split
        self.name = f'labels of split {split!r}'

    def state(self, record: FrameRecord) -> str:
        return self.generator.frame_state(record)

    def load(self, record: FrameRecord) -> FrameData:
        return self.generator.read(record)

    def process(self, record: FrameRecord, frame: FrameData, stats: Dict[str, float]) -> FrameOutput:
        return self.generator.process(frame, stats)

    def write(self, record: FrameRecord, output: FrameOutput) -> None:
        self.generator.write(record, output)

    def report_path(self, shard: Tuple[int, int]) -> str:
        return self.generator.paths.shard_report(self.split, *shard)

    def report(self, outcome: ShardOutcome) -> dict:
        return dict(split=self.split, shard=list(outcome.shard), num_frames=outcome.num_items,
                    already_done=outcome.already_done, written=outcome.written,
                    failures=[vars(f) for f in outcome.failures], failure_kinds=outcome.failure_kinds,
                    failure_fraction=outcome.failure_fraction, max_failure_fraction=outcome.max_failure_fraction,
                    seconds=outcome.seconds, mean_stage_seconds=mean_stage_seconds(outcome))

    def summary(self, outcome: ShardOutcome) -> str:
        stages = ', '.join(f'{k} {1000 * v:.0f} ms' for k, v in mean_stage_seconds(outcome).items())
        return f'per frame: {stages or "-"}'


def generate_labels(mask_source: dict, feature_source: dict, frames_root: str, out_dir: str, split: str = 'train',
                    label_cfg: Optional[dict] = None, split_file: Optional[str] = None,
                    axis_align_root: Optional[str] = None, shard: Tuple[int, int] = (0, 1), merge_only: bool = False,
                    auto_merge: bool = True, overwrite: bool = False, groups_from: Optional[str] = None,
                    workers: int = 0, progress: bool = True) -> Optional[dict]:
    """Frame labels of one split, as ``tools/generate_sam_labels.py`` makes them: pass (a) for ``shard`` and,
    when it is within the failure budget and every shard is reported, pass (b) by the first process to take the
    split's merge lock (``merge_only``: pass (b) alone).

    Before any frame or model is loaded the label root must be writable and hold no labels of other settings
    (unless ``overwrite``; :func:`~.settings.prepare_label_dir`), and the frames' depth units must match
    ``depth_scale``. ``mask_source`` / ``feature_source`` are registered source configs. Returns the shard report
    (None with ``merge_only``).
    """
    from .. import build_label_source
    label_cfg = merge_label_cfg(label_cfg)
    sources = dict(mask_source=mask_source.get('type'), feature_source=feature_source.get('type'))
    settings = label_settings(mask_source, feature_source, label_cfg, axis_align_root is not None)
    frames_fingerprint, labels_fingerprint = prepare_label_dir(out_dir, settings, overwrite)
    scenes = read_scene_list(split_file) if split_file else None
    records = list_frames(frames_root, scenes, label_cfg['frame_stride'])
    check_depth_scale(records, label_cfg['depth_scale'])
    print_log(f'{len(records)} frames (stride {label_cfg["frame_stride"]}) in {len({r.scene for r in records})} '
              f'scenes', logger='current')

    def merge() -> None:
        merge_split(out_dir, records, split, label_cfg, groups_from, workers, sources, progress, frames_fingerprint,
                    labels_fingerprint)

    if merge_only:
        merge()
        return None
    generator = LabelGenerator(build_label_source(mask_source), build_label_source(feature_source), out_dir,
                               label_cfg, axis_align_root, frames_fingerprint)
    report = generator.run(records, split, shard, progress=progress)
    if auto_merge and report['failure_fraction'] <= label_cfg['max_failure_fraction']:
        paths = LabelPaths(out_dir)
        merge_after_last_shard([paths.shard_report(split, i, shard[1]) for i in range(shard[1])],
                               paths.merge_lock(split), merge)
    return report
