"""Synthetic inputs shared by the tests, the benchmarks and the GPU check's bench (like ``mmdet3d.testing``): label
frames and files, collated pretraining batches, detection / segmentation scenes, Voronoi images, and tiny label
models with their configs. Nothing here is used by training or inference.

The ScanNet / SUN RGB-D / S3DIS data sets written to disk come from :mod:`projects.sam_mtp.datasets.synthetic`.
"""
from .images import voronoi_image, voronoi_regions
from .label_frames import make_collated_batch, make_frame_arrays, region_batch, region_points, write_label_split
from .scenes import det3d_sample, detection_batch, room_scene, segmentation_batch
from .tiny_models import (
                          TINY_SAM_ARCH,
                          TINY_VIT_ARCH,
                          build_tiny_sam,
                          build_tiny_vit,
                          tiny_sam_source_cfg,
                          tiny_vit_source_cfg,
)

__all__ = [
    'TINY_SAM_ARCH', 'TINY_VIT_ARCH', 'build_tiny_sam', 'build_tiny_vit', 'det3d_sample', 'detection_batch',
    'make_collated_batch', 'make_frame_arrays', 'region_batch', 'region_points', 'room_scene', 'segmentation_batch',
    'tiny_sam_source_cfg', 'tiny_vit_source_cfg', 'voronoi_image', 'voronoi_regions', 'write_label_split'
]
