"""Offline 2D foundation-model labels, in two pipelines around one job runner (docs/labels.md):

* ``frame_labels/``: per-frame labels for pretraining (``tools/generate_sam_labels.py``): SAM regions of posed
  RGB-D frames, DINOv2 region features, K-means groups; Bridge3D's text labels; label statistics.
* ``segments/``: scene segments for fine-tuning (``tools/make_scene_segments.py``): one registered segmenter per
  kind of data (multi-view SAM, single-image SAM, Stanford 2D-3D-S, geometric), one function per dataset
  (``make_*_segments``).
* ``runner/``: the sharded, resumable job runner both pipelines use (shards, finished items, failure kinds and
  budget, shard reports, the merge lock), the output-settings fingerprints and the tools' command-line helpers.
* ``formats/``: the files read and written: frame labels, scene segments, posed frame folders, ``.sens``.
* ``sources/``: the models (SAM, DINOv2, CLIP text and their stand-ins) and their checkpoints.
* ``fileio.py`` (atomic writes) and ``geometry.py`` (camera geometry of posed frames) serve both pipelines.

Importing this package registers the label sources in mmdet3d's ``MODELS`` registry:
``SAMAutomaticMaskSource``, ``InstanceImageMaskSource`` (stand-in), ``DINOv2FeatureSource`` and
``RandomViTFeatureSource`` (stand-in), and Bridge3D's text sources ``CLIPTextFeatureSource`` and
``RandomCLIPTextFeatureSource`` (stand-in); and the scene segmenters in its ``TASK_UTILS`` registry.
"""
from .formats.frame_labels import LabelFormatError, group_weights
from .formats.frames import FrameError, FrameRecord, list_frames, load_frame
from .formats.sens import SensFormatError, SensReader, SensWriter, export_sens_frames
from .frame_labels.generation import LabelGenerator
from .frame_labels.merge import LabelGenerationError, merge_split
from .frame_labels.pooling import pool_region_features
from .frame_labels.text_labels import add_text_labels
from .segments.jobs import (
                            make_geometric_segments,
                            make_s3dis_segments,
                            make_scannet_segments,
                            make_scene_segments,
                            make_sunrgbd_segments,
)
from .segments.multi_view import scene_segments
from .sources import (
                            CheckpointMismatchError,
                            CLIPTextFeatureSource,
                            DINOv2FeatureSource,
                            InstanceImageMaskSource,
                            RandomCLIPTextFeatureSource,
                            RandomViTFeatureSource,
                            SAMAutomaticMaskSource,
                            ViTFeatureSource,
                            build_label_source,
                            masks_to_region_map,
)

__all__ = [
    'CheckpointMismatchError', 'DINOv2FeatureSource', 'RandomViTFeatureSource', 'ViTFeatureSource',
    'LabelFormatError', 'group_weights', 'FrameError', 'FrameRecord', 'list_frames', 'load_frame',
    'LabelGenerationError', 'LabelGenerator', 'merge_split', 'InstanceImageMaskSource', 'SAMAutomaticMaskSource',
    'masks_to_region_map', 'pool_region_features', 'scene_segments', 'make_scene_segments', 'make_scannet_segments',
    'make_sunrgbd_segments', 'make_s3dis_segments', 'make_geometric_segments', 'SensFormatError',
    'SensReader', 'SensWriter', 'export_sens_frames', 'build_label_source', 'CLIPTextFeatureSource',
    'RandomCLIPTextFeatureSource', 'add_text_labels'
]
