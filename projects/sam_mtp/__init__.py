"""SAM-guided masked token prediction (NeurIPS 2024) for mmdet3d.

Importing this package (directly or through a config's ``custom_imports``) registers every module into
mmdet3d's registries, installs the CPU fallbacks of mmcv's 3D point ops (CUDA tensors still use mmcv's
kernels), allow-lists the types mmengine checkpoints contain for torch's safe loading and makes mmengine load
local checkpoint files through :func:`.engine.load_checkpoint_file` (one-line errors for bad files).
"""
from . import (  # noqa: F401,E402  (register modules)
    datasets,
    labels,
    models,
    ops,  # noqa: F401,E402  (installs the CPU point-op fallbacks on import)
)
from .engine import install_safe_checkpoint_loading

install_safe_checkpoint_loading()

__version__ = '0.1.0'
