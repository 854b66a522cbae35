"""Let mmengine 0.10.x load its own checkpoints under torch >= 2.6 without switching safe loading off.

torch 2.6 made ``torch.load(weights_only=True)`` the default. mmengine 0.10.7 calls ``torch.load`` without the
argument, and its checkpoints pickle a few non-tensor types (the message hub's ``HistoryBuffer`` with numpy
arrays, numpy scalars in ``meta``), so ``--resume`` and ``tools/test.py CONFIG CKPT`` fail with an
``UnpicklingError``. Instead of ``weights_only=False`` for every file, we allow-list exactly the types mmengine
writes. ``HistoryBuffer`` pickles its statistics methods as ``getattr(HistoryBuffer, 'min')``; allowing the
real ``builtins.getattr`` would let a crafted file reach any attribute, so it is replaced by a getattr that only
resolves HistoryBuffer's registered statistics methods.
"""
import pickle

import numpy as np
import torch

_INSTALLED = False


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
