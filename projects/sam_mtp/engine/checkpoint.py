"""Let mmengine 0.10.x load its own checkpoints under torch >= 2.6 without switching safe loading off.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls ``torch.load`` without the
argument, and its checkpoints pickle a few non-tensor types (the message hub's ``HistoryBuffer`` with numpy
arrays, numpy scalars in ``meta``), so ``--resume`` and ``tools/test.py CONFIG CKPT`` fail with an
``UnpicklingError``. Instead of ``weights_only=False`` for every file, we allow-list exactly the types mmengine
writes. ``HistoryBuffer`` pickles its statistics methods as ``getattr(HistoryBuffer, 'min')``; allowing the
real ``builtins.getattr`` would let a crafted file reach any attribute, so it is replaced by a getattr that only
resolves HistoryBuffer's registered statistics methods.

:func:`install_safe_checkpoint_loading` (called when ``projects.sam_mtp`` is imported) also routes mmengine's
loading of local files (``load_from``, ``--resume``, ``Pretrained`` init_cfg, our teacher and encoder loaders)
through :func:`load_checkpoint_file`: a file that cannot be loaded safely raises :class:`CheckpointLoadError`,
whose message is one line naming the file and why it was refused (empty, truncated, not a checkpoint, or
holding a type outside the allow-list, named). Nothing in a refused file is run, and the message never repeats
torch's advice to retry with ``weights_only=False``.
"""
import logging
import os
import pickle
import pickletools
import re
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

_INSTALLED = False
_SCHEME_INSTALLED = False
_ZIP_MAGIC = b'PK\x03\x04'


class CheckpointLoadError(RuntimeError):
    """A checkpoint file cannot be loaded safely. ``str(err)`` is one line: ``<path>: <reason>``."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f'{path}: {reason}')

    def with_context(self, what: str, context: str) -> 'CheckpointLoadError':
        """The same error saying which checkpoint it was (``what``) and what it was given for (``context``)."""
        return type(self)(self.path, f'cannot read the {what} checkpoint: {self.reason} ({context})')


class CheckpointNotFoundError(CheckpointLoadError, FileNotFoundError):
    """The checkpoint file does not exist (also a FileNotFoundError, as mmengine's loader raises)."""


def _numpy_globals():
    """The numpy reconstruction hooks that pickled arrays, scalars and dtypes refer to."""
    found = [np.ndarray, np.dtype]
    # numpy 2 moved these to numpy._core; pickles written under numpy 1 refer to numpy.core.
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        for attr, qualname in (('_reconstruct', f'{module_name}._reconstruct'),
                               ('scalar', f'{module_name}.scalar')):
            if hasattr(module, attr):
                found.append((getattr(module, attr), qualname))
    # numpy >= 1.25 pickles dtypes of arrays by their DType class (numpy.dtypes.Float64DType, ...).
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found.extend(getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType'))
    return found


def _history_buffer_getattr(obj, name):
    """Stand-in for ``builtins.getattr`` that resolves only HistoryBuffer's statistics methods."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: only HistoryBuffer statistics '
        'methods are allowed (safe loading is on; load files you trust with weights_only=False yourself)')


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list the types mmengine checkpoints contain for ``torch.load(weights_only=True)``. Idempotent."""
    global _INSTALLED
    if _INSTALLED or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    torch.serialization.add_safe_globals([
        HistoryBuffer,
        ConfigDict,
        (_history_buffer_getattr, 'builtins.getattr'),
        *_numpy_globals(),
    ])
    _INSTALLED = True


def _pickle_globals(data: bytes, limit: int = 64) -> List[str]:
    """``module.name`` of every class/function a pickle stream refers to, read with ``pickletools`` (which
    only parses opcodes; nothing is imported or called). Stops quietly at a truncated stream."""
    found, strings, memo, last_string = [], [], {}, None
    pos = 0
    try:
        while pos < len(data) and len(found) < limit:
            for op, arg, offset in pickletools.genops(data[pos:]):
                end = offset
                pushed_string = None
                if op.name == 'GLOBAL' or op.name == 'INST':
                    found.append(arg.replace(' ', '.'))
                elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    found.append(f'{strings[-2]}.{strings[-1]}')
                elif isinstance(arg, str) and ('UNICODE' in op.name or 'STRING' in op.name):
                    pushed_string = arg
                elif op.name == 'MEMOIZE' and last_string is not None:
                    memo[len(memo)] = last_string
                elif op.name in ('BINPUT', 'LONG_BINPUT', 'PUT') and last_string is not None:
                    memo[arg] = last_string
                elif op.name in ('BINGET', 'LONG_BINGET', 'GET') and arg in memo:
                    pushed_string = memo[arg]
                if pushed_string is not None:
                    strings.append(pushed_string)
                # Memo ops store the top of the stack: remember it while it is the string just pushed.
                if op.name not in ('MEMOIZE', 'BINPUT', 'LONG_BINPUT', 'PUT'):
                    last_string = pushed_string
            pos += end + 1  # several pickles in a row (torch's legacy format)
    except Exception:  # a truncated or garbled stream ends the scan
        pass
    return list(dict.fromkeys(found))


def _allowed_global_names() -> set:
    """Names torch's safe loader accepts (its defaults and the allow-listed types); empty if unavailable."""
    names = set()
    try:
        from torch import _weights_only_unpickler as unpickler
        names.update(unpickler._get_allowed_globals())
        names.update(unpickler._get_user_allowed_globals())
    except Exception:  # private API of torch: naming the types is best effort
        pass
    return names


def _torch_detail(err: BaseException) -> str:
    """The informative part of a torch.load error, without torch's advice to switch safe loading off."""
    text = str(err)
    match = re.search(r'unsupported GLOBAL ([\w.]+)', text, re.IGNORECASE)
    if match:
        return f'unsupported type {match.group(1)}'
    match = re.search(r'WeightsUnpickler error:\s*(.+)', text, re.DOTALL)
    if match:
        text = match.group(1)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if 'weights_only' not in line and 'torch.load' not in line]
    detail = lines[0] if lines else ''
    return f'{type(err).__name__}: {detail}' if detail else type(err).__name__


def describe_load_failure(path: str, err: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in words a user can act on (one line)."""
    size = os.path.getsize(path)
    if size == 0:
        return 'the file is empty (an interrupted save or copy?)'
    with open(path, 'rb') as f:
        head = f.read(16)
    refused = 'refused without running any of it (only tensors, containers, numbers, numpy arrays and ' \
              "mmengine's logging types are allowed in a checkpoint)"
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return (f'truncated or corrupt PyTorch checkpoint: its zip archive is incomplete ({size} bytes; an '
                    f'interrupted save or copy?)')
        unsafe: List[str] = []
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # naming the types is best effort
            pass
        if unsafe:
            return f'holds {", ".join(unsafe[:3])}, a type outside the allow-list of checkpoint contents; {refused}'
        if re.search(r'zip archive|central directory|CRC|corrupt', str(err), re.IGNORECASE):
            return f'truncated or corrupt PyTorch checkpoint ({_torch_detail(err)})'
        return f'cannot be loaded safely ({_torch_detail(err)}); {refused}'
    if head[:1] == b'\x80':  # a pickle (protocol >= 2), torch's legacy format or a plain pickle
        with open(path, 'rb') as f:
            names = _pickle_globals(f.read())
        allowed = _allowed_global_names()
        unsafe = [n for n in names if n not in allowed]
        if unsafe:
            return f'holds {", ".join(unsafe[:3])}, a type outside the allow-list of checkpoint contents; {refused}'
        if isinstance(err, (EOFError, pickle.UnpicklingError)) and re.search(
                r'truncated|ran out of input|EOF', f'{type(err).__name__} {err}', re.IGNORECASE):
            return 'truncated pickle: the file ends before the checkpoint does (an interrupted save or copy?)'
        return f'a pickle that is not a loadable PyTorch checkpoint ({_torch_detail(err)}); {refused}'
    return f'not a PyTorch checkpoint: neither a zip archive nor a pickle (it starts with {head!r})'


def load_checkpoint_file(path: str, map_location=None):
    """``torch.load(path, weights_only=True)`` with mmengine's types allowed; any failure becomes a
    CheckpointLoadError naming the file and the reason (:func:`describe_load_failure`)."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(path, 'checkpoint file does not exist')
    allow_mmengine_checkpoint_types()
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # classified below; torch's own text suggests unpickling unsafely
        reason = describe_load_failure(path, err)
    raise CheckpointLoadError(path, reason)


def install_safe_checkpoint_loading() -> None:
    """Allow-list mmengine's checkpoint types and make mmengine load local checkpoint files with
    :func:`load_checkpoint_file`. Idempotent; called when ``projects.sam_mtp`` is imported."""
    global _SCHEME_INSTALLED
    allow_mmengine_checkpoint_types()
    if _SCHEME_INSTALLED:
        return
    from mmengine.runner.checkpoint import CheckpointLoader
    # The scheme of local paths; replaces mmengine's load_from_local (a bare torch.load).
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)
    _SCHEME_INSTALLED = True



class CheckpointMismatchError(CheckpointLoadError):
    """A readable checkpoint whose keys or shapes do not fit the model that should load it. ``str(err)`` is one
    line (:func:`describe_state_mismatch`); the full lists are in the log."""


def describe_state_mismatch(path: str, what: str, missing: Sequence[str] = (), unexpected: Sequence[str] = (),
                            shapes: Sequence[Tuple[str, tuple, tuple]] = (), hint: str = '',
                            show: int = 3) -> str:
    """The one-line reason why the checkpoint ``path`` does not fit ``what``: the number of mismatching keys by
    kind and the first ``show`` of them (mis-shaped, then missing, then unexpected), then ``hint``.

    Every mismatching key is written to the log (mmengine's current logger), one line per kind, so that the
    message stays one line however many keys differ. ``shapes`` holds ``(key, checkpoint shape, model shape)``.
    """
    kinds = [('shape mismatches', [f'{k}: checkpoint {tuple(a)} vs model {tuple(b)}' for k, a, b in shapes]),
             ('missing keys', list(missing)), ('unexpected keys', list(unexpected))]
    total = sum(len(items) for _, items in kinds)
    for name, items in kinds:
        if items:
            print_log(f'{path} vs {what}: {len(items)} {name}: {items}', logger='current', level=logging.WARNING)
    first = [f'{item} ({name.split()[0]})' if name != 'shape mismatches' else item
             for name, items in kinds for item in items][:show]
    counts = ', '.join(f'{len(items)} {name}' for name, items in kinds if items)
    more = f' (+{total - len(first)} more in the log)' if total > len(first) else ''
    hint = f'; {hint}' if hint else ''
    return f'does not fit {what}: {total} mismatching keys ({counts}), first {", ".join(first)}{more}{hint}'


def load_state_strict(module: torch.nn.Module, state: Dict[str, torch.Tensor], checkpoint: str, what: str,
                      hint: str = '', show: int = 3, ignore_unexpected: bool = False,
                      error: type = None, shown_prefix: str = '') -> Dict[str, torch.Tensor]:
    """The one strict loader: ``state`` (keys already stripped of their prefixes) must hold every key of
    ``module`` with its shape, and nothing else unless ``ignore_unexpected`` (then the extra keys are logged).

    Otherwise raises ``error`` (default :class:`CheckpointMismatchError`) with the one-line message of
    :func:`describe_state_mismatch` naming ``checkpoint`` and ``what`` (keys shown as in the file, with
    ``shown_prefix``). Returns the loaded ``{key: tensor}``."""
    own = module.state_dict()
    missing = [shown_prefix + k for k in own if k not in state]
    unexpected = [shown_prefix + k for k in state if k not in own]
    shapes = [(shown_prefix + k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if missing or shapes or (unexpected and not ignore_unexpected):
        reason = describe_state_mismatch(checkpoint, what, missing, () if ignore_unexpected else unexpected, shapes,
                                         hint=hint, show=show)
        raise (error or CheckpointMismatchError)(checkpoint, reason)
    if unexpected:
        print_log(f'{checkpoint}: {len(unexpected)} keys not used by {what}, e.g. {unexpected[:show]}',
                  logger='current', level=logging.WARNING)
    loaded = {k: state[k] for k in own}
    module.load_state_dict(loaded, strict=True)
    return loaded


def read_checkpoint_state(checkpoint: str, what: str, context: str, load_context: Optional[str] = None,
                          map_location: str = 'cpu') -> Tuple[dict, Dict[str, torch.Tensor]]:
    """(the loaded checkpoint, its state dict without DDP's ``module.``), read with mmengine's loader under safe
    loading; errors are one line naming the file, ``what`` checkpoint it is and ``context`` (what it was given for;
    ``load_context`` for a file that exists but cannot be read, default ``context``)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    if '://' not in checkpoint and not os.path.isfile(checkpoint):
        raise CheckpointNotFoundError(checkpoint, f'{what} checkpoint does not exist ({context})')
    install_safe_checkpoint_loading()
    try:
        loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
    except CheckpointLoadError as err:  # one line naming the file and why it was refused
        raise err.with_context(what, load_context or context) from None
    except Exception as err:  # a corrupt or foreign file: say which one
        raise RuntimeError(f'{checkpoint}: cannot read the {what} checkpoint ({type(err).__name__}: {err})') from err
    state = state_dict_of(loaded)
    if state is None:
        raise RuntimeError(f'{checkpoint}: expected a state dict, got {type(loaded).__name__}')
    return loaded, state


def strip_prefix(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """The keys under ``prefix`` (e.g. ``backbone.``) without it; the other keys are left out."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def state_dict_of(checkpoint) -> Optional[Dict[str, torch.Tensor]]:
    """The state dict of a loaded checkpoint (mmengine's ``state_dict``, or a bare one), with the ``module.``
    of DDP-saved keys removed; None when it holds none."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        return None
    return {(k[len('module.'):] if k.startswith('module.') else k): v for k, v in state.items()}


def _model_type_in_config_text(text: str) -> Optional[str]:
    """``type`` of the top-level ``model = dict(...)`` in mmengine's ``meta['cfg']`` text, read without running
    it (the text comes from the checkpoint file)."""
    match = re.search(r'^model\s*=\s*dict\(', text, re.MULTILINE)
    if match is None:
        return None
    depth, pos = 1, match.end()
    for token in re.finditer(r"[()\[\]{}]|type\s*=\s*'(\w+)'|type\s*=\s*\"(\w+)\"|'(?:\\.|[^'])*'|\"(?:\\.|[^\"])*\"",
                             text[pos:]):
        char = token.group(0)
        if char in '([{':
            depth += 1
        elif char in ')]}':
            depth -= 1
            if depth == 0:
                return None
        elif depth == 1 and (token.group(1) or token.group(2)):
            return token.group(1) or token.group(2)
    return None


def describe_checkpoint(checkpoint, state: Dict[str, torch.Tensor]) -> str:
    """What a checkpoint holds, for messages: its model type (from mmengine's saved config) and its top-level
    key prefixes, e.g. ``a SamMtpMaskedTokenPredictor pretraining state (keys under backbone., decoder.)``."""
    meta = checkpoint.get('meta', None) if isinstance(checkpoint, dict) else None
    cfg_text = meta.get('cfg', None) if isinstance(meta, dict) else None
    model_type = _model_type_in_config_text(cfg_text) if isinstance(cfg_text, str) else None
    prefixes = list(dict.fromkeys(k.split('.')[0] + ('.' if '.' in k else '') for k in state))
    shown = ', '.join(prefixes[:6]) + (f' and {len(prefixes) - 6} more' if len(prefixes) > 6 else '')
    kind = 'model state'
    if model_type is not None:
        from mmdet3d.registry import MODELS

        from projects.sam_mtp.models.algorithms.base import BaseTokenAlgorithm
        model_cls = MODELS.get(model_type)
        if isinstance(model_cls, type) and issubclass(model_cls, BaseTokenAlgorithm):
            kind = 'pretraining state'
    owner = f'a {model_type} {kind}' if model_type else 'a state'
    return f'{owner} ({len(state)} keys under {shown})'


def check_checkpoint_fits_model(model: torch.nn.Module, path: str) -> None:
    """Refuse (CheckpointMismatchError) to evaluate ``model`` with a checkpoint that lacks some of its weights or
    holds them in other shapes: mmengine would load what matches, warn, and score the rest untrained.

    A pretraining checkpoint given to a fine-tuning config is named as such, with what to do instead. Keys the
    model does not have only go to the log.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper
    if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    checkpoint = load_checkpoint_file(path, map_location='cpu')
    state = state_dict_of(checkpoint)
    if state is None:
        raise CheckpointMismatchError(path, f'holds no state dict (a {type(checkpoint).__name__})')
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state and hasattr(state[k], 'shape') and tuple(state[k].shape) != tuple(v.shape)]
    if not missing and not shapes:
        if unexpected:
            print_log(f'{path}: {len(unexpected)} keys the model does not have, ignored: {unexpected}',
                      logger='current', level=logging.WARNING)
        return
    held = describe_checkpoint(checkpoint, state)
    what = f'the {type(model).__name__} of the config'
    mismatch = describe_state_mismatch(path, what, missing, unexpected, shapes,
                                       hint='evaluating it would score untrained weights')
    if 'pretraining state' in held:
        raise CheckpointMismatchError(path, (
            f'holds {held}, not a trained {type(model).__name__}: fine-tune it first (tools/train.py with a '
            f"fine-tuning config) or pass it as model.backbone.init_cfg=dict(type='Pretrained', "
            f"checkpoint='{path}', prefix='backbone.')"))
    raise CheckpointMismatchError(path, f'holds {held}; {mismatch}')
