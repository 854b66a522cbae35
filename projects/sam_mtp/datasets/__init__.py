"""Datasets, transforms and the synthetic ScanNet-format scene generator."""
# Pretraining frames (stage 1/2): dataset, point transforms, collate.
# Bridge3D pretraining: the frame labels plus text and frame-level image targets.
from .bridge3d_frames import Bridge3DFrameDataset, PackBridge3DInputs, bridge3d_collate  # noqa: E402,F401
from .collate import sam_mtp_collate  # noqa: E402,F401
from .frame_dataset import SamMtpFrameDataset  # noqa: E402,F401
from .point_count import ScenePointCountHook  # noqa: E402,F401  (warns when scenes are denser than the recipe's)
from .random_cuboid import RandomCuboidCrop  # noqa: E402,F401  (3DETR augmentation)

# Fine-tuning: scene-level SAM segments as a point column (SAM-guided tokens on whole scenes).
from .scene_segments import LoadSceneSegments  # noqa: E402,F401
from .transforms import (  # noqa: E402,F401
                         FrameCenterPoints,
                         FrameRandomDropout,
                         FrameRandomJitter,
                         FrameRandomRotScale,
                         FrameSamplePoints,
                         PackFrameInputs,
)
