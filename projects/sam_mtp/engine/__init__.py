"""Runtime glue: safe checkpoint loading and launcher/config checks used by tools/."""
from .checkpoint import allow_mmengine_checkpoint_types
from .launch import ConfigCheckError, check_dataset_files, explain_registry_error, setup_cpu_distributed

__all__ = ['allow_mmengine_checkpoint_types', 'ConfigCheckError', 'check_dataset_files',
           'explain_registry_error', 'setup_cpu_distributed']
