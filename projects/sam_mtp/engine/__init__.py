"""Runtime glue: safe checkpoint loading and launcher/config checks used by tools/."""
from . import show  # noqa: F401,E402  (registers PointCloudShowHook)
from .checkpoint import (
                         CheckpointLoadError,
                         CheckpointMismatchError,
                         CheckpointNotFoundError,
                         allow_mmengine_checkpoint_types,
                         check_checkpoint_fits_model,
                         describe_state_mismatch,
                         install_safe_checkpoint_loading,
                         load_checkpoint_file,
)
from .launch import ConfigCheckError, check_dataset_files, explain_registry_error, setup_cpu_distributed

__all__ = ['allow_mmengine_checkpoint_types', 'install_safe_checkpoint_loading', 'load_checkpoint_file',
           'CheckpointLoadError', 'CheckpointMismatchError', 'CheckpointNotFoundError', 'check_checkpoint_fits_model',
           'describe_state_mismatch', 'ConfigCheckError', 'check_dataset_files',
           'explain_registry_error', 'setup_cpu_distributed']
