"""Scene-segment files for mmdet3d-format datasets: the sources, the sharded/resumable runner, one function per
dataset. ``tools/make_scene_segments.py`` is the command line over this module.

Samples are the entries of mmdet3d info files (``data_list[i].lidar_points.lidar_path`` names
``<points_dir>/<sample>.bin``); every sample gets ``<segments_dir>/<sample>.bin`` (one int64 per point, -1 =
none) and its sidecar ``<sample>.json`` (method, ``sam`` true/false, settings, counts; ``scene_segments.py``).

Sources (``segment_cfg['source']``):

* ``posed_frames`` (ScanNet, custom posed RGB-D frames): the frames of ``<frames_root>/<sample>/`` in the export
  or flat layout of ``labels/frames.py``, SAM region maps from a label root (``labels_dir``, as
  ``tools/generate_sam_labels.py`` writes them) or from the mask source now, merged across views with a depth
  test (``scene_segments.py``). The points must be in the frame of the poses (mmdet3d's ScanNet points are).
* ``single_image`` (SUN RGB-D, custom single images): SAM on the sample's image ``images[camera].img_path``,
  each point projected with ``depth2img`` (or ``cam2img`` + ``lidar2cam``, or ``lidar2img``;
  ``segment_projection.py``).
* ``s3dis_2d3ds`` (S3DIS with the Stanford 2D-3D-S images): the room is registered to its frames, then merged
  across views like ``posed_frames`` (``segment_2d3ds.py``).
* ``geometric`` (any dataset without images): graph-based over-segmentation, **not SAM**
  (``segment_geometric.py``). A ``fallback_cfg`` with this source makes it the fallback of the samples a SAM
  source has no image for (no frames, no image file, no registration); their sidecars say so.

Runner: samples are sharded by name (``crc32(name) % N``, independent of listing order), a sample is finished when
its ``.bin`` holds one id per point and its sidecar names a method of this run and carries the fingerprint of this
run's output settings for that method (reruns skip it), files are written atomically (sidecar first, ``.bin``
last), a failing sample is logged with its name, counted by kind and skipped, and a shard report
``<segments_dir>/_work/shard-I-of-N.json`` keeps failures and per-sample timings (model time = the mask source's;
the rest is this code's). More failures than ``max_failure_fraction`` make the tool exit with status 1.

Reruns (``labels/output_dir.py``): before any model is built the output folder is probed for writing, and a
folder holding segment files of this run's methods made with other (or unrecorded) settings is refused with one
line naming the differing settings, unless ``overwrite``; then those files are redone, each replaced atomically,
and files made with these settings are kept (an interrupted overwrite resumes).
"""
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log

from ..fileio import atomic_write_bytes
from ..formats.frames import FrameError, FrameRecord, list_scene_frames, read_color
from ..formats.scene_segments import (count_points, load_scene_points, read_segment_meta, save_scene_segments,
                                      segment_file)
from .multi_view import posed_frame_views, scene_segments
from ..runner.output_dir import OutputDirError, check_writable, settings_fingerprint, source_settings, stale_output_message
from ..runner.sharding import shard_of

SEGMENT_FAILURE_KINDS = ('missing_points', 'bad_points', 'missing_image', 'bad_calibration', 'point_count_mismatch',
                         'method_mismatch', 'no_views', 'registration', 'error')
# Kinds after which a SAM source hands the sample to the fallback source, when there is one.
FALLBACK_KINDS = ('missing_image', 'no_views', 'registration')

_MULTI_VIEW = dict(depth_tolerance=0.1, iou_threshold=0.7, min_shared_points=5, min_segment_points=1)
SOURCE_DEFAULTS = {
    'posed_frames': dict(frame_stride=25, mask_size=(480, 640), depth_scale=1000.0, **_MULTI_VIEW),
    'single_image': dict(image_dir='', camera='CAM0', pixel_origin=0, mask_size=None, min_segment_points=1),
    's3dis_2d3ds': dict(frame_stride=1, mask_size=(540, 540), **_MULTI_VIEW, registration={}),
    'geometric': None,  # labels/segment_geometric.py: DEFAULT_GEOMETRIC_CFG
}
SAM_SOURCES = ('posed_frames', 'single_image', 's3dis_2d3ds')
SOURCE_METHODS = dict(posed_frames='sam_multi_view', single_image='sam_single_image', s3dis_2d3ds='sam_multi_view',
                      geometric='geometric')
# segment_cfg entries that are not output settings: paths (moved images give the same segments).
PATH_SEGMENT_KEYS = ('image_dir', )


class SegmentError(ValueError):
    """One sample cannot be segmented; ``kind`` is one of SEGMENT_FAILURE_KINDS, the message names the sample."""

    def __init__(self, kind: str, sample: str, problem: str):
        assert kind in SEGMENT_FAILURE_KINDS, kind
        self.kind = kind
        self.sample = sample
        super().__init__(f'{sample}: {problem}')


@dataclass
class SegmentJob:
    """One sample: its name (the points file's stem), points file and mmdet3d info entry."""
    name: str
    points_path: str
    info: dict = field(default_factory=dict)


def merge_source_cfg(cfg: dict) -> dict:
    """``cfg`` (with ``source``) over its source's defaults; unknown keys are an error listing the known ones."""
    from .stanford_2d3ds import DEFAULT_REGISTRATION_CFG
    from .geometric import DEFAULT_GEOMETRIC_CFG
    cfg = dict(cfg)
    source = cfg.pop('source', None)
    if source not in SOURCE_DEFAULTS:
        raise KeyError(f'segment_cfg.source must be one of {sorted(SOURCE_DEFAULTS)}, got {source!r}')
    defaults = SOURCE_DEFAULTS[source] or DEFAULT_GEOMETRIC_CFG
    unknown = set(cfg) - set(defaults)
    if unknown:
        raise KeyError(f'unknown {source} segment setting(s) {sorted(unknown)}; known: {sorted(defaults)}')
    out = dict(defaults, **cfg)
    if source == 's3dis_2d3ds':
        unknown = set(out['registration']) - set(DEFAULT_REGISTRATION_CFG)
        if unknown:
            raise KeyError(f'unknown registration setting(s) {sorted(unknown)}; known: '
                           f'{sorted(DEFAULT_REGISTRATION_CFG)}')
        out['registration'] = dict(DEFAULT_REGISTRATION_CFG, **out['registration'])
    if out.get('mask_size') is not None:
        out['mask_size'] = tuple(int(v) for v in out['mask_size'])
    out['source'] = source
    return out


# ---------------------------------------------------------------------------------------------------- mask sources
class TimedMaskSource:
    """A mask source that adds up the seconds spent in it (the "model part" of the timings)."""

    def __init__(self, source):
        self.source = source
        self.seconds = 0.0

    def __call__(self, image: np.ndarray, record: FrameRecord, mask_size=None) -> np.ndarray:
        """Region map (int32, 0 = none) of ``image`` resized to ``mask_size`` (H, W; None: its own size)."""
        import cv2
        if mask_size is not None and image.shape[:2] != tuple(mask_size):
            height, width = mask_size
            shrink = image.shape[0] > height
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        tic = time.perf_counter()
        region_map = np.asarray(self.source(image, record))
        self.seconds += time.perf_counter() - tic
        if region_map.shape != image.shape[:2]:
            raise RuntimeError(f'{type(self.source).__name__} returned a {region_map.shape} map for a '
                               f'{image.shape[:2]} image')
        return region_map.astype(np.int32, copy=False)


def build_mask_source(mask_source) -> Optional[TimedMaskSource]:
    """A :class:`TimedMaskSource` from a registered source config dict or a callable (None stays None)."""
    if mask_source is None:
        return None
    if isinstance(mask_source, TimedMaskSource):
        return mask_source
    if isinstance(mask_source, dict):
        from mmdet3d.registry import MODELS

        from ..sources import mask_sources  # noqa: F401  (registers the sources)
        mask_source = MODELS.build(dict(mask_source))
    return TimedMaskSource(mask_source)


# ---------------------------------------------------------------------------------------------------- sources
class PosedFramesSegmenter:
    """``posed_frames``: SAM regions of the sample's posed RGB-D frames merged across views."""
    method = 'sam_multi_view'

    def __init__(self, cfg: dict, frames_root: str, labels_dir: Optional[str] = None,
                 mask_source: Optional[TimedMaskSource] = None):
        if frames_root is None:
            raise ValueError('the posed_frames source needs frames_root (--frames-root)')
        if labels_dir is None and mask_source is None:
            raise ValueError('the posed_frames source needs region maps: a label root (--labels-dir) or a '
                             'mask_source in the config')
        self.cfg, self.frames_root, self.labels_dir, self.mask_source = cfg, frames_root, labels_dir, mask_source
        self.settings = dict(cfg, region_maps='labels_dir' if labels_dir else 'mask_source')

    def _region_map(self, record: FrameRecord) -> Optional[np.ndarray]:
        if self.labels_dir is not None:
            from ..frame_labels.generation import LabelPaths, read_region_map
            path = LabelPaths(self.labels_dir).region_map(record.scene, record.frame_id)
            return read_region_map(path) if os.path.isfile(path) else None
        return self.mask_source(read_color(record.color_path), record, self.cfg['mask_size'])

    def __call__(self, job: SegmentJob, points: np.ndarray) -> Tuple[np.ndarray, dict]:
        scene_dir = os.path.join(self.frames_root, job.name)
        if not os.path.isdir(scene_dir):
            raise SegmentError('no_views', job.name, f'no frame folder {scene_dir}')
        try:
            records = list_scene_frames(scene_dir, self.cfg['frame_stride'], job.name)
        except ValueError as err:
            raise SegmentError('no_views', job.name, str(err)) from err
        skipped: List[str] = []
        used = [0]

        def counted(views):
            for view in views:
                used[0] += 1
                yield view

        views = counted(posed_frame_views(records, self._region_map, self.cfg['depth_scale'], skipped))
        labels = scene_segments(points[:, :3], views, self.cfg['depth_tolerance'], self.cfg['iou_threshold'],
                                self.cfg['min_shared_points'], self.cfg['min_segment_points'])
        if used[0] == 0:
            raise SegmentError('no_views', job.name, f'none of the {len(records)} frames of {scene_dir} (stride '
                               f'{self.cfg["frame_stride"]}) has a pose, depth and region map'
                               + (f'; e.g. {skipped[0]}' if skipped else ''))
        return labels, dict(frames_root=self.frames_root, views_used=used[0], frames_listed=len(records),
                            frames_skipped=len(skipped), skipped_examples=skipped[:3])


class SingleImageSegmenter:
    """``single_image``: SAM on the sample's own image, every point takes the region under its projection."""
    method = 'sam_single_image'
    _warned_transposed = False

    def __init__(self, cfg: dict, data_root: str, mask_source: Optional[TimedMaskSource]):
        if mask_source is None:
            raise ValueError('the single_image source needs a mask_source in the config')
        self.cfg, self.data_root, self.mask_source = cfg, data_root, mask_source
        self.settings = dict(cfg)

    def _projection(self, cam: dict, where: str):
        from .projection import CalibrationError, camera_projection, lidar_projection, sunrgbd_projection
        try:
            if 'depth2img' in cam:
                return sunrgbd_projection(cam['depth2img'], where)
            if 'cam2img' in cam and 'lidar2cam' in cam:
                return camera_projection(cam['cam2img'], cam['lidar2cam'], where), 'cam2img@lidar2cam'
            if 'lidar2img' in cam:
                return lidar_projection(cam['lidar2img'], where), 'lidar2img'
        except CalibrationError as err:
            raise SegmentError('bad_calibration', where, str(err).split(': ', 1)[-1]) from err
        raise SegmentError('bad_calibration', where, f'image entry has no depth2img, cam2img + lidar2cam or '
                           f'lidar2img (keys: {sorted(cam)})')

    def __call__(self, job: SegmentJob, points: np.ndarray) -> Tuple[np.ndarray, dict]:
        from .projection import project_to_image, single_image_segments
        cam = (job.info.get('images') or {}).get(self.cfg['camera'])
        if not cam or not cam.get('img_path'):
            raise SegmentError('missing_image', job.name, f'its info has no images.{self.cfg["camera"]}.img_path')
        path = cam['img_path']
        if not os.path.isabs(path):
            path = os.path.join(self.data_root, self.cfg['image_dir'], path)
        try:
            image = read_color(path)
        except FrameError as err:
            raise SegmentError('missing_image', job.name, str(err)) from err
        info_hw = (cam.get('height'), cam.get('width'))
        if None not in info_hw and tuple(int(v) for v in info_hw) != image.shape[:2]:
            raise SegmentError('bad_calibration', job.name, f'{path} is {image.shape[0]}x{image.shape[1]} but its '
                               f'info says {int(info_hw[0])}x{int(info_hw[1])} (H x W)')
        projection, form = self._projection(cam, job.name)
        if form == 'K.T@R' and not SingleImageSegmenter._warned_transposed:
            SingleImageSegmenter._warned_transposed = True
            print_log(f'{job.name}: depth2img has the K.T @ R form of infos converted by mmdet3d v0.x; it is '
                      'factorised back into K @ R (see labels/segment_projection.py); further samples of this '
                      'form are counted in their sidecars only', logger='current', level=logging.WARNING)
        hw = image.shape[:2]
        projected = project_to_image(points[:, :3], projection, hw, self.cfg['pixel_origin'])
        record = FrameRecord(job.name, 0, os.path.dirname(os.path.dirname(path)), 'image', path, '', '')
        region_map = self.mask_source(image, record, self.cfg['mask_size'])
        labels = single_image_segments(points[:, :3], region_map, projection, hw, self.cfg['pixel_origin'],
                                       self.cfg['min_segment_points'], projected)
        return labels, dict(image=path, calibration_form=form, num_regions=int(region_map.max(initial=0)),
                            in_image_fraction=round(float(projected[4].mean()), 4) if len(points) else 0.0)


class S3DIS2D3DSSegmenter:
    """``s3dis_2d3ds``: the room registered to its Stanford 2D-3D-S frames, their SAM regions merged across views."""
    method = 'sam_multi_view'

    def __init__(self, cfg: dict, images_root: str, mask_source: Optional[TimedMaskSource],
                 transforms_dir: Optional[str] = None):
        if images_root is None or mask_source is None:
            raise ValueError('the s3dis_2d3ds source needs images_root (--images-root) and a mask_source')
        self.cfg, self.images_root, self.mask_source = cfg, images_root, mask_source
        self.transforms_dir = transforms_dir
        self.settings = dict(cfg)
        self._rooms = None

    def rooms(self):
        if self._rooms is None:
            from .stanford_2d3ds import list_2d3ds_frames
            self._rooms = list_2d3ds_frames(self.images_root)
        return self._rooms

    def _views(self, frames, skipped):
        from .multi_view import SegmentView
        from .stanford_2d3ds import read_2d3ds_depth, read_2d3ds_pose
        for frame in frames:
            try:
                k, cam_to_area = read_2d3ds_pose(frame.pose_path)
                depth = read_2d3ds_depth(frame.depth_path)
                image = read_color(frame.rgb_path)
            except (FrameError, ValueError) as err:
                skipped.append(str(err))
                continue
            record = FrameRecord(frame.sample, frame.frame_id, os.path.dirname(os.path.dirname(frame.rgb_path)),
                                 '2d3ds', frame.rgb_path, frame.depth_path, frame.pose_path)
            region_map = self.mask_source(image, record, self.cfg['mask_size'])
            yield SegmentView(depth, cam_to_area, k, k, image.shape[:2], region_map)

    def _transform(self, job: SegmentJob, points: np.ndarray, frames) -> Tuple[np.ndarray, dict]:
        from .stanford_2d3ds import (RegistrationError, frame_stride_for, frames_cloud, read_2d3ds_depth,
                                    read_2d3ds_pose, register_room, transform_of)
        given = transform_of(self.transforms_dir, job.name)
        if given is not None:
            return given, dict(source=os.path.join(self.transforms_dir, f'{job.name}.txt'))
        reg = self.cfg['registration']
        check = set(np.linspace(0, len(frames) - 1, min(reg['check_views'], len(frames))).round().astype(int))
        samples, check_views, stride = [], [], None
        for i, frame in enumerate(frames):  # one frame in memory at a time: rooms have hundreds of full-HD frames
            try:
                k, cam_to_area = read_2d3ds_pose(frame.pose_path)
                depth = read_2d3ds_depth(frame.depth_path)
            except (FrameError, ValueError):
                continue  # the view pass reports unreadable frames
            stride = stride or frame_stride_for(depth.shape, len(frames), reg['frame_points'])
            samples.append(frames_cloud([(depth, k, cam_to_area)], stride))
            if i in check:
                check_views.append((depth, k, cam_to_area))
        cloud = np.concatenate(samples) if samples else np.zeros((0, 3), np.float32)
        try:
            return register_room(points[:, :3], cloud, check_views, job.name, **reg)
        except RegistrationError as err:
            raise SegmentError('registration', job.name, str(err).split(': ', 1)[-1]) from err

    def __call__(self, job: SegmentJob, points: np.ndarray) -> Tuple[np.ndarray, dict]:
        from ..geometry import transform_points
        frames = self.rooms().get(job.name)
        if not frames:
            raise SegmentError('no_views', job.name, f'no 2D-3D-S frames of this room under {self.images_root} '
                               '(area_<N>/data/rgb/camera_*_<room>_frame_*_domain_rgb.png)')
        frames = frames[::self.cfg['frame_stride']]
        transform, registration = self._transform(job, points, frames)
        area_points = transform_points(points[:, :3].astype(np.float32), transform)
        skipped: List[str] = []
        labels = scene_segments(area_points, self._views(frames, skipped), self.cfg['depth_tolerance'],
                                self.cfg['iou_threshold'], self.cfg['min_shared_points'],
                                self.cfg['min_segment_points'])
        if len(skipped) == len(frames):
            raise SegmentError('no_views', job.name, f'none of its {len(frames)} frames is readable, e.g. '
                               f'{skipped[0]}')
        return labels, dict(images_root=self.images_root, views_used=len(frames) - len(skipped),
                            frames_skipped=len(skipped), skipped_examples=skipped[:3], registration=registration)


class GeometricSegmenter:
    """``geometric``: graph-based over-segmentation of the points (NOT SAM)."""
    method = 'geometric'

    def __init__(self, cfg: dict):
        self.cfg = {k: v for k, v in cfg.items() if k != 'source'}
        self.settings = dict(cfg)

    def __call__(self, job: SegmentJob, points: np.ndarray) -> Tuple[np.ndarray, dict]:
        from .geometric import geometric_segments
        rgb = points[:, 3:6] if points.shape[1] >= 6 else None
        return geometric_segments(points[:, :3], rgb, **self.cfg), dict(
            note='NOT SAM: a geometric over-segmentation standing in for SAM segments of data without images')


class WithFallback:
    """A SAM source whose samples without images (FALLBACK_KINDS) are segmented by a fallback source."""

    def __init__(self, primary, fallback):
        self.primary, self.fallback = primary, fallback
        self.method = primary.method
        self.settings = dict(primary.settings, fallback=fallback.settings)

    @property
    def methods(self):
        return {self.primary.method, self.fallback.method}

    def __call__(self, job: SegmentJob, points: np.ndarray) -> Tuple[np.ndarray, dict]:
        try:
            return self.primary(job, points)
        except SegmentError as err:
            if err.kind not in FALLBACK_KINDS:
                raise
            print_log(f'{err}; using the {self.fallback.method} fallback (NOT SAM) for it', logger='current',
                      level=logging.WARNING)
            labels, meta = self.fallback(job, points)
            return labels, dict(meta, fallback_reason=str(err), method=self.fallback.method)


def _region_map_settings(labels_dir: str):
    """What decides the region maps of a label root: its recorded mask source and mask size."""
    from ..frame_labels.generation import read_label_settings
    recorded = read_label_settings(labels_dir)
    if recorded is None:
        return 'unrecorded'
    return dict(mask_source=recorded['settings']['mask_source'],
                mask_size=recorded['settings']['label_cfg']['mask_size'])


def segment_output_settings(segment_cfg: dict, mask_source=None, labels_dir: Optional[str] = None,
                            fallback_cfg: Optional[dict] = None, points_load_dim: int = 6) -> Dict[str, dict]:
    """Per method this run can write: the output settings of its files (labels/output_dir.py), from the configs
    alone (no model is built). ``segment_cfg`` merged over its source's defaults (paths left out), the mask source
    (or, with ``labels_dir``, the label root's recorded mask settings), ``points_load_dim``; the geometric
    fallback's files have ``fallback_cfg``'s."""
    cfg = merge_source_cfg(segment_cfg)
    source = cfg['source']
    primary = dict(segment_cfg={k: v for k, v in cfg.items() if k not in PATH_SEGMENT_KEYS},
                   points_load_dim=points_load_dim)
    if source == 'posed_frames' and labels_dir is not None:
        primary['region_maps'] = _region_map_settings(labels_dir)
    elif source in SAM_SOURCES:
        primary['mask_source'] = source_settings(mask_source)
    settings = {SOURCE_METHODS[source]: primary}
    if fallback_cfg:
        fallback = merge_source_cfg(fallback_cfg)
        if fallback['source'] != 'geometric':
            raise ValueError(f'fallback_cfg must use the geometric source, got {fallback["source"]!r}')
        settings.setdefault('geometric', dict(fallback_cfg=fallback, points_load_dim=points_load_dim))
    return settings


def build_segmenter(segment_cfg: dict, data_root: str, mask_source=None, frames_root: Optional[str] = None,
                    labels_dir: Optional[str] = None, images_root: Optional[str] = None,
                    transforms_dir: Optional[str] = None, fallback_cfg: Optional[dict] = None):
    """The source object of ``segment_cfg`` (see the module docstring), wrapped with its fallback if any."""
    cfg = merge_source_cfg(segment_cfg)
    source = cfg['source']
    masks = build_mask_source(mask_source) if source in SAM_SOURCES else None
    if source == 'posed_frames':
        segmenter = PosedFramesSegmenter(cfg, frames_root, labels_dir, masks)
    elif source == 'single_image':
        segmenter = SingleImageSegmenter(cfg, data_root, masks)
    elif source == 's3dis_2d3ds':
        segmenter = S3DIS2D3DSSegmenter(cfg, images_root, masks, transforms_dir)
    else:
        segmenter = GeometricSegmenter(cfg)
    segmenter.mask_timer = masks
    if fallback_cfg:
        fallback = build_segmenter(fallback_cfg, data_root)
        if fallback.method != 'geometric':
            raise ValueError(f'fallback_cfg must use the geometric source, got {fallback_cfg.get("source")!r}')
        wrapped = WithFallback(segmenter, fallback)
        wrapped.mask_timer = masks
        return wrapped
    return segmenter


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
def _methods(segmenter) -> set:
    return getattr(segmenter, 'methods', {segmenter.method})


def shard_jobs(jobs: Sequence[SegmentJob], shard=(0, 1)) -> List[SegmentJob]:
    index, total = shard
    return [j for j in jobs if shard_of(j.name, total) == index]


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
        path = os.path.join(segments_dir, f'{job.name}.bin')
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


def _check_finished(job: SegmentJob, path: str, segmenter, overwrite: bool, load_dim: int,
                    method_settings: Optional[Dict[str, dict]] = None) -> bool:
    """True when ``path`` is a finished segment file of ``job`` made by a method of this run (with this run's
    settings for it, when ``method_settings`` is given); raises SegmentError for a file that disagrees with the
    sample (unless ``overwrite``, which redoes it)."""
    if not os.path.isfile(path) or (overwrite and method_settings is None):
        return False
    try:
        num_points = count_points(job.points_path, load_dim)
    except (FileNotFoundError, ValueError):
        return False  # the processing reports the point file's problem
    size = os.path.getsize(path)
    if size != 8 * num_points:
        if overwrite:
            return False
        raise SegmentError('point_count_mismatch', job.name, f'{path} has {size / 8:g} segment ids but '
                           f'{job.points_path} has {num_points} points; the points changed since the segments were '
                           'made: rerun with --overwrite')
    meta = read_segment_meta(path)
    method = meta.get('method') if meta else None
    if method not in _methods(segmenter):
        if overwrite:
            return False
        raise SegmentError('method_mismatch', job.name, f'{path} was made by method {method!r}, this run makes '
                           f'{sorted(_methods(segmenter))}; rerun with --overwrite to replace it')
    # other settings: refused before the run (check_segment_settings) unless overwrite, which redoes them
    return method_settings is None or _fingerprint_matches(meta, method_settings)


def run_segment_jobs(jobs: Sequence[SegmentJob], segmenter, segments_dir: str, shard=(0, 1), overwrite: bool = False,
                     progress: bool = True, max_failure_fraction: float = 0.05, points_load_dim: int = 6,
                     method_settings: Optional[Dict[str, dict]] = None) -> dict:
    """Segment every job of ``shard`` that is not finished; returns (and writes) the shard report.

    ``method_settings`` (:func:`segment_output_settings`): recorded in every sidecar, and a file counts as finished
    only with its method's fingerprint; ``overwrite`` then redoes only files that are not finished. Without it
    nothing is recorded and ``overwrite`` redoes every file."""
    index, total = shard
    mine = shard_jobs(jobs, shard)
    failures = []
    todo = []

    def fail(job: SegmentJob, err: Exception) -> None:
        kind = err.kind if isinstance(err, SegmentError) else 'error'
        message = str(err) if isinstance(err, SegmentError) else f'{job.name}: {type(err).__name__}: {err}'
        failures.append(dict(sample=job.name, kind=kind, message=message))
        print_log(f'skipped ({kind}): {message}', logger='current', level=logging.ERROR)

    finished = 0
    for job in mine:
        try:
            if _check_finished(job, os.path.join(segments_dir, f'{job.name}.bin'), segmenter, overwrite,
                               points_load_dim, method_settings):
                finished += 1
            else:
                todo.append(job)
        except SegmentError as err:
            fail(job, err)
    print_log(f'scene segments ({segmenter.method}), shard {index}/{total}: {len(mine)} samples, {finished} '
              f'already finished, {len(todo)} to do -> {segments_dir}', logger='current')
    bar = None
    if progress and todo:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(todo), file=sys.stderr)
    timings = {}
    methods = Counter()
    timer = getattr(segmenter, 'mask_timer', None)
    start = time.time()
    for job in todo:
        tic = time.perf_counter()
        model_before = timer.seconds if timer is not None else 0.0
        try:
            try:
                points = load_scene_points(job.points_path, points_load_dim)
            except FileNotFoundError as err:
                raise SegmentError('missing_points', job.name, str(err)) from err
            except ValueError as err:
                raise SegmentError('bad_points', job.name, str(err)) from err
            labels, meta = segmenter(job, points)
            if len(labels) != len(points):  # a source bug must never write a file LoadSceneSegments refuses
                raise SegmentError('error', job.name, f'{len(labels)} segment ids for {len(points)} points')
            num_segments = int(labels.max(initial=-1)) + 1
            meta = dict(meta, sample=job.name, points_file=job.points_path, num_points=int(len(points)),
                        num_segments=num_segments, assigned_fraction=round(float((labels >= 0).mean()), 4)
                        if len(labels) else 0.0, settings=segmenter.settings, tool='tools/make_scene_segments.py')
            meta.setdefault('method', segmenter.method)
            if method_settings is not None:
                meta.update(output_settings=method_settings[meta['method']],
                            settings_fingerprint=settings_fingerprint(method_settings[meta['method']]))
            save_scene_segments(os.path.join(segments_dir, f'{job.name}.bin'), labels, meta)
            methods[meta['method']] += 1
            seconds = time.perf_counter() - tic
            model = (timer.seconds if timer is not None else 0.0) - model_before
            timings[job.name] = dict(seconds=round(seconds, 4), model_seconds=round(model, 4),
                                     non_model_seconds=round(seconds - model, 4), num_points=int(len(points)))
            print_log(f'{job.name}: {num_segments} segments ({meta["method"]}), {meta["assigned_fraction"]:.1%} of '
                      f'{len(points)} points assigned', logger='current')
        except Exception as err:  # one bad sample must not stop a run over thousands
            fail(job, err)
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    kinds = Counter(f['kind'] for f in failures)
    done = list(timings.values())
    report = dict(
        method=segmenter.method, shard=[index, total], num_samples=len(mine), written=len(done),
        already_finished=finished,
        methods_written=dict(methods), failures=failures, failure_kinds=dict(kinds),
        failure_fraction=len(failures) / max(len(mine), 1), max_failure_fraction=max_failure_fraction,
        seconds=round(time.time() - start, 2), settings=segmenter.settings, timings=timings,
        mean_seconds={k: round(float(np.mean([t[k] for t in done])), 4) if done else None
                      for k in ('seconds', 'model_seconds', 'non_model_seconds')})
    path = os.path.join(segments_dir, '_work', f'shard-{index}-of-{total}.json')
    atomic_write_bytes(path, (json.dumps(report, indent=1) + '\n').encode())
    level = logging.ERROR if report['failure_fraction'] > max_failure_fraction else logging.INFO
    print_log(f'shard {index}/{total}: {len(done)} written ({dict(methods) or "-"}), failures: '
              f'{dict(kinds) or "none"} (fraction {report["failure_fraction"]:.3f}, allowed {max_failure_fraction}); '
              f'per sample {report["mean_seconds"]["non_model_seconds"]} s without the model; report {path}',
              logger='current', level=level)
    return report


# ---------------------------------------------------------------------------------------------------- the API
def make_scene_segments(data_root: str, info_files: Sequence[str], segment_cfg: dict, mask_source=None, *,
                        frames_root: Optional[str] = None, labels_dir: Optional[str] = None,
                        images_root: Optional[str] = None, transforms_dir: Optional[str] = None,
                        fallback_cfg: Optional[dict] = None, segments_dir: Optional[str] = None,
                        points_dir: Optional[str] = None, shard=(0, 1), overwrite: bool = False, progress: bool = True,
                        max_failure_fraction: float = 0.05, points_load_dim: int = 6) -> dict:
    """Segment files ``<segments_dir or data_root/scene_segments>/<sample>.bin`` of every sample of ``info_files``.

    ``segment_cfg`` picks the source (``source`` key, module docstring) and overrides its settings; ``mask_source``
    is a registered mask-source config (e.g. ``SAMAutomaticMaskSource`` with a checkpoint path) or a callable.
    Before the mask source is built, the output folder must be writable and hold no segment files of other
    settings (unless ``overwrite``; module docstring). Returns the shard report (failures, timings).
    """
    segments_dir = segments_dir or os.path.join(data_root, 'scene_segments')
    method_settings = segment_output_settings(segment_cfg, mask_source, labels_dir, fallback_cfg, points_load_dim)
    check_writable(segments_dir)
    jobs = jobs_from_infos(info_files, data_root, points_dir)
    check_segment_settings(shard_jobs(jobs, shard), segments_dir, method_settings, overwrite)
    segmenter = build_segmenter(segment_cfg, data_root, mask_source, frames_root, labels_dir, images_root,
                                transforms_dir, fallback_cfg)
    return run_segment_jobs(jobs, segmenter, segments_dir, shard, overwrite, progress, max_failure_fraction,
                            points_load_dim, method_settings)


def make_scannet_segments(data_root: str, info_files: Sequence[str], frames_root: str, labels_dir: Optional[str] = None,
                          mask_source=None, segment_cfg: Optional[dict] = None, **kwargs) -> dict:
    """ScanNet (mmdet3d layout): SAM regions of ``frames_root/<scene>/`` (from ``labels_dir``'s region maps, or
    ``mask_source`` now) merged across views onto ``points/<scene>.bin``."""
    return make_scene_segments(data_root, info_files, dict(segment_cfg or {}, source='posed_frames'), mask_source,
                               frames_root=frames_root, labels_dir=labels_dir, **kwargs)


def make_sunrgbd_segments(data_root: str, info_files: Sequence[str], mask_source, segment_cfg: Optional[dict] = None,
                          **kwargs) -> dict:
    """SUN RGB-D (mmdet3d layout): SAM on ``sunrgbd_trainval/image/<idx>.jpg``, points projected with the info's
    ``depth2img`` (MATLAB 1-based pixels)."""
    cfg = dict(dict(image_dir=os.path.join('sunrgbd_trainval', 'image'), pixel_origin=1), **(segment_cfg or {}))
    return make_scene_segments(data_root, info_files, dict(cfg, source='single_image'), mask_source, **kwargs)


def make_s3dis_segments(data_root: str, info_files: Sequence[str], images_root: str, mask_source,
                        segment_cfg: Optional[dict] = None, geometric_fallback: bool = False,
                        fallback_cfg: Optional[dict] = None, **kwargs) -> dict:
    """S3DIS (mmdet3d layout) with the Stanford 2D-3D-S images under ``images_root``; with
    ``geometric_fallback`` rooms without frames get geometric (NOT SAM) segments."""
    fallback = dict(fallback_cfg or {}, source='geometric') if geometric_fallback or fallback_cfg else None
    return make_scene_segments(data_root, info_files, dict(segment_cfg or {}, source='s3dis_2d3ds'), mask_source,
                               images_root=images_root, fallback_cfg=fallback, **kwargs)


def make_geometric_segments(data_root: str, info_files: Sequence[str], segment_cfg: Optional[dict] = None,
                            **kwargs) -> dict:
    """Any mmdet3d-format dataset without images: geometric over-segmentation (NOT SAM)."""
    return make_scene_segments(data_root, info_files, dict(segment_cfg or {}, source='geometric'), **kwargs)
