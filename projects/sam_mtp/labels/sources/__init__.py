"""The models behind the labels, registered in mmdet3d's ``MODELS``: mask sources (SAM's automatic masks, the
instance-image stand-in), image feature sources (DINOv2, the random-ViT and class-embedding stand-ins), text
feature sources (CLIP's text tower, its random stand-in), and the strict reading of their checkpoints."""
from .checkpoints import CheckpointMismatchError
from .feature_sources import DINOv2FeatureSource, RandomViTFeatureSource, ViTFeatureSource
from .mask_sources import InstanceImageMaskSource, SAMAutomaticMaskSource, masks_to_region_map
from .text_features import CLIPTextFeatureSource, RandomCLIPTextFeatureSource


def build_label_source(cfg):
    """Build a mask or feature source from its config dict (``type`` = a registered source name)."""
    from mmdet3d.registry import MODELS
    return MODELS.build(cfg)


__all__ = [
    'CheckpointMismatchError', 'DINOv2FeatureSource', 'RandomViTFeatureSource', 'ViTFeatureSource',
    'InstanceImageMaskSource', 'SAMAutomaticMaskSource', 'masks_to_region_map', 'CLIPTextFeatureSource',
    'RandomCLIPTextFeatureSource', 'build_label_source'
]
