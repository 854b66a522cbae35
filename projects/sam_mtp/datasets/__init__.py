"""Datasets, transforms and the synthetic ScanNet-format scene generator."""
# Pretraining frames (stage 1/2): dataset, point transforms, collate.
from .collate import sam_mtp_collate  # noqa: E402,F401
from .frame_dataset import SamMtpFrameDataset  # noqa: E402,F401
from .transforms import (FrameCenterPoints, FrameRandomDropout, FrameRandomJitter,  # noqa: E402,F401
                         FrameRandomRotScale, FrameSamplePoints, PackFrameInputs)
# Fine-tuning: scene-level SAM segments as a point column (SAM-guided tokens on whole scenes).
from .scene_segments import LoadSceneSegments  # noqa: E402,F401
from .random_cuboid import RandomCuboidCrop  # noqa: E402,F401  (3DETR augmentation)
from .point_count import ScenePointCountHook  # noqa: E402,F401  (warns when scenes are denser than the recipe's)
