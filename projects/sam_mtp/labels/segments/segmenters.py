"""The scene segmenters: one class per kind of data, registered in mmdet3d's ``TASK_UTILS`` and chosen by
``segment_cfg.type`` (configs/sam_mtp/segments/). A segmenter is called as ``segmenter(job, points)`` and returns
the segment id of every point (formats/scene_segments.py) and the facts its sidecar records.

========================  ======================  ===========================================================
type                      method                  data
========================  ======================  ===========================================================
``PosedFramesSegmenter``  ``sam_multi_view``      ScanNet, custom posed RGB-D frames
``SingleImageSegmenter``  ``sam_single_image``    SUN RGB-D, custom single images
``S3DIS2D3DSSegmenter``   ``sam_multi_view``      S3DIS with the Stanford 2D-3D-S images
``GeometricSegmenter``    ``geometric``           any data without images; NOT SAM
========================  ======================  ===========================================================

Every segmenter records its settings with ``source`` (``posed_frames``, ``single_image``, ``s3dis_2d3ds``,
``geometric``), the name segment files have recorded since before the registry, so their fingerprints stay
valid; a ``segment_cfg`` may still name the segmenter by that ``source`` instead of ``type``. A ``fallback_cfg``
with the geometric segmenter makes it the fallback of the samples a SAM segmenter has no image for (no frames, no
image file, no registration); their sidecars say so.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Type

import numpy as np
from mmdet3d.registry import TASK_UTILS
from mmengine.logging import print_log

from ..formats.frame_labels import LabelPaths, read_label_settings, read_region_map
from ..formats.frames import FrameError, FrameRecord, list_scene_frames, read_color
from ..geometry import transform_points
from ..runner.jobs import JobError
from ..runner.output_dir import source_settings
from ..sources.mask_sources import TimedMaskSource, build_mask_source
from .geometric import DEFAULT_GEOMETRIC_CFG, geometric_segments
from .multi_view import SegmentView, posed_frame_views, scene_segments
from .projection import (
    CalibrationError,
    camera_projection,
    lidar_projection,
    project_to_image,
    single_image_segments,
    sunrgbd_projection,
)
from .stanford_2d3ds import (
    DEFAULT_REGISTRATION_CFG,
    RegistrationError,
    frame_stride_for,
    frames_cloud,
    list_2d3ds_frames,
    read_2d3ds_depth,
    read_2d3ds_pose,
    register_room,
    transform_of,
)

SEGMENT_FAILURE_KINDS = ('missing_points', 'bad_points', 'missing_image', 'bad_calibration', 'point_count_mismatch',
                         'method_mismatch', 'no_views', 'registration', 'error')
# Kinds after which a SAM segmenter hands the sample to the fallback segmenter, when there is one.
FALLBACK_KINDS = ('missing_image', 'no_views', 'registration')
_MULTI_VIEW = dict(depth_tolerance=0.1, iou_threshold=0.7, min_shared_points=5, min_segment_points=1)


class SegmentError(JobError):
    """One sample cannot be segmented; ``kind`` is one of SEGMENT_FAILURE_KINDS, the message names the sample."""
    kinds = SEGMENT_FAILURE_KINDS

    def __init__(self, kind: str, sample: str, problem: str):
        super().__init__(kind, sample, problem)
        self.sample = sample


@dataclass
class SegmentJob:
    """One sample: its name (the points file's stem, also its shard key), points file and mmdet3d info entry."""
    name: str
    points_path: str
    info: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name


@dataclass
class SegmentInputs:
    """Where a run's inputs are: paths only, which never change what a segmenter computes."""
    data_root: str
    frames_root: Optional[str] = None
    labels_dir: Optional[str] = None
    images_root: Optional[str] = None
    transforms_dir: Optional[str] = None


class SceneSegmenter:
    """Base of the registered segmenters: ``cfg`` (the segment settings) over the class's ``defaults``."""
    source = ''            # its name in the recorded settings
    method = ''            # how its files are made (formats/scene_segments.py: SEGMENT_METHODS)
    uses_sam = False       # needs SAM's region maps (a mask source, or a label root)
    defaults: dict = {}
    path_keys: Tuple[str, ...] = ()  # settings that are paths, not output settings

    def __init__(self, inputs: SegmentInputs, mask_source: Optional[TimedMaskSource] = None, **cfg):
        self.cfg = self.merge_cfg(cfg)
        self.settings = dict(self.cfg)
        self.mask_source = self.mask_timer = mask_source

    @classmethod
    def merge_cfg(cls, cfg: dict) -> dict:
        """``cfg`` over the defaults, with ``source``; unknown keys are an error listing the known ones."""
        cfg = {k: v for k, v in cfg.items() if k not in ('type', 'source')}
        unknown = set(cfg) - set(cls.defaults)
        if unknown:
            raise KeyError(f'unknown {cls.source} segment setting(s) {sorted(unknown)}; known: {sorted(cls.defaults)}')
        out = dict(cls.defaults, **cfg)
        if out.get('mask_size') is not None:
            out['mask_size'] = tuple(int(v) for v in out['mask_size'])
        out['source'] = cls.source
        return out

    @classmethod
    def region_map_settings(cls, mask_source, labels_dir: Optional[str]) -> dict:
        """What decides the SAM region maps of this run's files (part of their output settings)."""
        return dict(mask_source=source_settings(mask_source)) if cls.uses_sam else {}

    def __call__(self, job: SegmentJob, points: np.ndarray) -> Tuple[np.ndarray, dict]:
        raise NotImplementedError


def segmenter_class(cfg: dict) -> Type[SceneSegmenter]:
    """The registered segmenter that ``cfg`` names by ``type`` (or by the ``source`` name files record)."""
    known = {name: cls for name, cls in TASK_UTILS.module_dict.items()
             if isinstance(cls, type) and issubclass(cls, SceneSegmenter)}
    name, source = cfg.get('type'), cfg.get('source')
    cls = known.get(name) if name is not None else {c.source: c for c in known.values()}.get(source)
    if cls is None:
        raise KeyError(f'segment_cfg.type must be one of {sorted(known)}, got {name if name else source!r}')
    if source not in (None, cls.source):
        raise KeyError(f'segment_cfg.type {name} is the {cls.source!r} source, not {source!r}; keep one of the two')
    return cls


def merge_source_cfg(cfg: dict) -> dict:
    """``cfg`` (naming its segmenter by ``type`` or ``source``) over its segmenter's defaults, with ``source``."""
    return segmenter_class(cfg).merge_cfg(cfg)


@TASK_UTILS.register_module()
class PosedFramesSegmenter(SceneSegmenter):
    """SAM regions of the sample's posed RGB-D frames (``<frames_root>/<sample>/``, export or flat layout of
    labels/formats/frames.py) merged across views (``multi_view.py``); the region maps come from a label root of
    ``tools/generate_sam_labels.py`` (``labels_dir``) or from the mask source now. The points must be in the frame
    of the poses (mmdet3d's ScanNet points are)."""
    source = 'posed_frames'
    method = 'sam_multi_view'
    uses_sam = True
    defaults = dict(frame_stride=25, mask_size=(480, 640), depth_scale=1000.0, **_MULTI_VIEW)

    def __init__(self, inputs: SegmentInputs, mask_source: Optional[TimedMaskSource] = None, **cfg):
        if inputs.frames_root is None:
            raise ValueError('the posed_frames source needs frames_root (--frames-root)')
        if inputs.labels_dir is None and mask_source is None:
            raise ValueError('the posed_frames source needs region maps: a label root (--labels-dir) or a '
                             'mask_source in the config')
        super().__init__(inputs, mask_source, **cfg)
        self.frames_root, self.labels_dir = inputs.frames_root, inputs.labels_dir
        self.settings = dict(self.cfg, region_maps='labels_dir' if self.labels_dir else 'mask_source')

    @classmethod
    def region_map_settings(cls, mask_source, labels_dir: Optional[str]):
        if labels_dir is None:
            return super().region_map_settings(mask_source, labels_dir)
        recorded = read_label_settings(labels_dir)  # what decides a label root's maps: its mask source and size
        return dict(region_maps='unrecorded' if recorded is None else dict(
            mask_source=recorded['settings']['mask_source'], mask_size=recorded['settings']['label_cfg']['mask_size']))

    def _region_map(self, record: FrameRecord) -> Optional[np.ndarray]:
        if self.labels_dir is not None:
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


@TASK_UTILS.register_module()
class SingleImageSegmenter(SceneSegmenter):
    """SAM on the sample's own image ``images[camera].img_path`` (SUN RGB-D, custom single images), each point
    projected with ``depth2img`` (or ``cam2img`` + ``lidar2cam``, or ``lidar2img``; ``projection.py``) takes the
    region under it."""
    source = 'single_image'
    method = 'sam_single_image'
    uses_sam = True
    defaults = dict(image_dir='', camera='CAM0', pixel_origin=0, mask_size=None, min_segment_points=1)
    path_keys = ('image_dir', )  # moved images give the same segments
    _warned_transposed = False

    def __init__(self, inputs: SegmentInputs, mask_source: Optional[TimedMaskSource] = None, **cfg):
        if mask_source is None:
            raise ValueError('the single_image source needs a mask_source in the config')
        super().__init__(inputs, mask_source, **cfg)
        self.data_root = inputs.data_root

    def _projection(self, cam: dict, where: str):
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
                      'factorised back into K @ R (see labels/segments/projection.py); further samples of this '
                      'form are counted in their sidecars only', logger='current', level=logging.WARNING)
        hw = image.shape[:2]
        projected = project_to_image(points[:, :3], projection, hw, self.cfg['pixel_origin'])
        record = FrameRecord(job.name, 0, os.path.dirname(os.path.dirname(path)), 'image', path, '', '')
        region_map = self.mask_source(image, record, self.cfg['mask_size'])
        labels = single_image_segments(points[:, :3], region_map, projection, hw, self.cfg['pixel_origin'],
                                       self.cfg['min_segment_points'], projected)
        return labels, dict(image=path, calibration_form=form, num_regions=int(region_map.max(initial=0)),
                            in_image_fraction=round(float(projected[4].mean()), 4) if len(points) else 0.0)


@TASK_UTILS.register_module()
class S3DIS2D3DSSegmenter(SceneSegmenter):
    """S3DIS with the Stanford 2D-3D-S images (``images_root``): the room is registered to its frames
    (``stanford_2d3ds.py``; or a given transform from ``transforms_dir``), then their SAM regions are merged across
    views like :class:`PosedFramesSegmenter`."""
    source = 's3dis_2d3ds'
    method = 'sam_multi_view'
    uses_sam = True
    defaults = dict(frame_stride=1, mask_size=(540, 540), **_MULTI_VIEW, registration={})

    def __init__(self, inputs: SegmentInputs, mask_source: Optional[TimedMaskSource] = None, **cfg):
        if inputs.images_root is None or mask_source is None:
            raise ValueError('the s3dis_2d3ds source needs images_root (--images-root) and a mask_source')
        super().__init__(inputs, mask_source, **cfg)
        self.images_root, self.transforms_dir = inputs.images_root, inputs.transforms_dir
        self._rooms = None

    @classmethod
    def merge_cfg(cls, cfg: dict) -> dict:
        out = super().merge_cfg(cfg)
        unknown = set(out['registration']) - set(DEFAULT_REGISTRATION_CFG)
        if unknown:
            raise KeyError(f'unknown registration setting(s) {sorted(unknown)}; known: '
                           f'{sorted(DEFAULT_REGISTRATION_CFG)}')
        out['registration'] = dict(DEFAULT_REGISTRATION_CFG, **out['registration'])
        return out

    def rooms(self):
        if self._rooms is None:
            self._rooms = list_2d3ds_frames(self.images_root)
        return self._rooms

    def _views(self, frames, skipped):
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


@TASK_UTILS.register_module()
class GeometricSegmenter(SceneSegmenter):
    """Graph-based over-segmentation of the points (``geometric.py``), **NOT SAM**: for data without images, and
    as the fallback of the samples a SAM segmenter has no image for."""
    source = 'geometric'
    method = 'geometric'
    defaults = DEFAULT_GEOMETRIC_CFG

    def __call__(self, job: SegmentJob, points: np.ndarray) -> Tuple[np.ndarray, dict]:
        rgb = points[:, 3:6] if points.shape[1] >= 6 else None
        settings = {k: v for k, v in self.cfg.items() if k != 'source'}
        return geometric_segments(points[:, :3], rgb, **settings), dict(
            note='NOT SAM: a geometric over-segmentation standing in for SAM segments of data without images')


class WithFallback:
    """A SAM segmenter whose samples without images (FALLBACK_KINDS) are segmented by a fallback segmenter."""

    def __init__(self, primary: SceneSegmenter, fallback: SceneSegmenter):
        self.primary, self.fallback = primary, fallback
        self.method = primary.method
        self.settings = dict(primary.settings, fallback=fallback.settings)
        self.mask_timer = primary.mask_timer

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


def build_segmenter(segment_cfg: dict, data_root: str, mask_source=None, frames_root: Optional[str] = None,
                    labels_dir: Optional[str] = None, images_root: Optional[str] = None,
                    transforms_dir: Optional[str] = None, fallback_cfg: Optional[dict] = None):
    """The registered segmenter of ``segment_cfg``, wrapped with the geometric fallback of ``fallback_cfg``."""
    cls = segmenter_class(segment_cfg)
    masks = build_mask_source(mask_source) if cls.uses_sam else None
    inputs = SegmentInputs(data_root, frames_root, labels_dir, images_root, transforms_dir)
    cfg = {k: v for k, v in segment_cfg.items() if k not in ('type', 'source')}
    segmenter = TASK_UTILS.build(dict(cfg, type=segment_cfg.get('type') or cls.__name__),
                                 default_args=dict(inputs=inputs, mask_source=masks))
    if fallback_cfg:
        fallback = build_segmenter(fallback_cfg, data_root)
        if fallback.method != 'geometric':
            raise ValueError(f'fallback_cfg must use GeometricSegmenter, got {type(fallback).__name__}')
        return WithFallback(segmenter, fallback)
    return segmenter


# The ``source`` names of the segmenters that run SAM (their configs need a mask_source).
SAM_SOURCES = tuple(cls.source for cls in SceneSegmenter.__subclasses__() if cls.uses_sam)
