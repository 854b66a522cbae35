"""Import-time stand-in for numba, used by the GPU check only on a machine that lacks numba.

mmdet3d 1.4 imports numba at module level (``mmdet3d.structures.ops.box_np_ops``,
``mmdet3d.datasets.transforms.data_augment_utils``, the KITTI evaluation) to decorate CPU helpers of outdoor
pipelines; nothing the GPU check runs calls them. The real numba needs llvmlite, whose wheel alone (56 MB)
exceeds what the GPU check may carry (see docs/gpu_check.md). The decorators here return the Python function
unchanged, so a call still computes the right answer, only without compilation; anything else raises.

Never installed into an environment: the GPU check writes this file as ``numba/__init__.py`` (with
``numba_core_stand_in.py`` and ``numba_core_errors_stand_in.py`` as ``numba/core/__init__.py`` and
``numba/core/errors.py``) into its work folder and puts that on ``PYTHONPATH`` only when ``import numba`` fails
there, and records that in the report.
"""
from typing import Any, Callable

SAM_MTP_IMPORT_SHIM = True
__version__ = '0.0.0'


def jit(*args: Any, **kwargs: Any) -> Callable:
    """``@jit``, ``@jit(...)`` and ``@jit('signature', ...)`` all leave the function as it is."""
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda fn: fn


njit = generated_jit = vectorize = guvectorize = cfunc = stencil = jit
prange = range


class cuda:  # noqa: N801  (numba.cuda's module name)
    """``numba.cuda.jit`` decorates kernels of mmdet3d's KITTI rotated-IoU at import."""
    jit = staticmethod(jit)

    @staticmethod
    def is_available() -> bool:
        return False


def __getattr__(name: str) -> Any:
    raise AttributeError(f'numba.{name}: numba is not installed here; the GPU check replaced it by an import-time '
                         'stand-in (dev/gpu_check/stand_ins/numba_stand_in.py) that only provides the decorators')
