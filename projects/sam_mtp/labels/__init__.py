"""Offline 2D foundation-model labels: frame export, SAM masks, DINOv2 features, groups, scene segments
(``tools/make_scene_segments.py``: one function per dataset, ``make_*_segments``).

Importing this package registers the label sources in mmdet3d's ``MODELS`` registry:
``SAMAutomaticMaskSource``, ``InstanceImageMaskSource`` (stand-in), ``DINOv2FeatureSource`` and
``RandomViTFeatureSource`` (stand-in), and Bridge3D's text sources ``CLIPTextFeatureSource`` and
``RandomCLIPTextFeatureSource`` (stand-in). See docs/labels.md.
"""
from .checkpoints import CheckpointMismatchError
from .feature_sources import DINOv2FeatureSource, RandomViTFeatureSource, ViTFeatureSource
from .format import LabelFormatError, group_weights
from .frames import FrameError, FrameRecord, list_frames, load_frame
from .generation import LabelGenerationError, LabelGenerator, merge_split
from .mask_sources import InstanceImageMaskSource, SAMAutomaticMaskSource, masks_to_region_map
from .pooling import pool_region_features
from .scene_segments import scene_segments
from .segment_jobs import (make_geometric_segments, make_s3dis_segments, make_scannet_segments, make_scene_segments,
                           make_sunrgbd_segments)
from .sens import SensFormatError, SensReader, SensWriter, export_sens_frames
from .text_features import CLIPTextFeatureSource, RandomCLIPTextFeatureSource
from .text_labels import add_text_labels


def build_label_source(cfg):
    """Build a mask or feature source from its config dict (``type`` = a registered source name)."""
    from mmdet3d.registry import MODELS
    return MODELS.build(cfg)


__all__ = [
    'CheckpointMismatchError', 'DINOv2FeatureSource', 'RandomViTFeatureSource', 'ViTFeatureSource',
    'LabelFormatError', 'group_weights', 'FrameError', 'FrameRecord', 'list_frames', 'load_frame',
    'LabelGenerationError', 'LabelGenerator', 'merge_split', 'InstanceImageMaskSource', 'SAMAutomaticMaskSource',
    'masks_to_region_map', 'pool_region_features', 'scene_segments', 'make_scene_segments', 'make_scannet_segments',
    'make_sunrgbd_segments', 'make_s3dis_segments', 'make_geometric_segments', 'SensFormatError',
    'SensReader', 'SensWriter', 'export_sens_frames', 'build_label_source', 'CLIPTextFeatureSource',
    'RandomCLIPTextFeatureSource', 'add_text_labels'
]
