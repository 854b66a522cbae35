"""Strict checkpoint loading for the offline label models, with errors that name the file and the keys."""
import os
from typing import Callable, Dict, Optional, Sequence

import torch

from ...engine.checkpoint import CheckpointLoadError, load_checkpoint_file, load_state_strict
from ...engine.checkpoint import CheckpointMismatchError as EngineCheckpointMismatchError


class CheckpointMismatchError(EngineCheckpointMismatchError, ValueError):
    """A checkpoint's keys or shapes do not match the model that should load it."""


def require_checkpoint(path: str, what: str) -> None:
    """Fail before building a large model when its weights are not there."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: {what} checkpoint does not exist (give the path of the downloaded '
                                f'weights in the label config)')


def read_state_dict(path: str, what: str, strip_prefixes: Sequence[str] = ('module.', )) -> Dict[str, torch.Tensor]:
    """Load a state dict from ``path`` onto the CPU.

    Accepts a bare state dict or a dict holding one under ``state_dict`` / ``model`` (mmengine / mmpretrain /
    SAM release files). Leading ``strip_prefixes`` are removed when *every* key carries them, and keys under a
    prefix ending in '.' (e.g. ``backbone.``) are selected when the file also stores other parts.
    """
    require_checkpoint(path, what)
    try:
        # Safe loading only (tensors, containers, mmengine's checkpoint types): a label model's weights never
        # need more, and a crafted file must not run code.
        ckpt = load_checkpoint_file(path, map_location='cpu')
    except CheckpointLoadError as err:
        raise CheckpointMismatchError(path, f'cannot read the {what} checkpoint: {err.reason}') from None
    if isinstance(ckpt, dict):
        for key in ('state_dict', 'model'):
            if key in ckpt and isinstance(ckpt[key], dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointMismatchError(path, f'{what} checkpoint is not a state dict of tensors')
    for prefix in strip_prefixes:
        if ckpt and all(k.startswith(prefix) for k in ckpt):
            ckpt = {k[len(prefix):]: v for k, v in ckpt.items()}
        elif prefix.endswith('.') and any(k.startswith(prefix) for k in ckpt):
            ckpt = {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)}
    return ckpt


def load_state_dict_strict(model: torch.nn.Module, path: str, what: str,
                           strip_prefixes: Sequence[str] = ('module.', ), show: int = 3,
                           keep: Optional[Callable[[str], bool]] = None) -> None:
    """Load ``path`` into ``model`` requiring identical keys and shapes; otherwise raise
    CheckpointMismatchError with the number of missing, unexpected and mis-shaped keys and the first ``show``
    (all of them in the log).

    ``keep`` selects the keys of the file that belong to ``model`` (e.g. the text tower of a whole CLIP
    checkpoint); the selected keys must then match exactly."""
    state = read_state_dict(path, what, strip_prefixes)
    if keep is not None:
        state = {k: v for k, v in state.items() if keep(k)}
    load_state_strict(model, state, path, f'the {what} model', show=show, error=CheckpointMismatchError)
