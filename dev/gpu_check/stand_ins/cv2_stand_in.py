"""Import-time stand-in for OpenCV (cv2), used by the GPU check only on a machine that lacks it.

mmcv and mmengine import cv2 at module level and read its constants into tables (interpolation codes, border
modes, imread flags); mmengine's runner calls ``cv2.setNumThreads``. The GPU check's paths decode no image with
OpenCV, and the opencv-python wheel (61-74 MB) exceeds what the check may carry (see docs/gpu_check.md).
Constants are distinct integers, ``setNumThreads`` / ``ocl.setUseOpenCL`` do nothing, and every other function
raises a clear error when called, so a result can never silently come from this stand-in.

Never installed into an environment: the GPU check writes this file as ``cv2/__init__.py`` into its work folder
and puts that on ``PYTHONPATH`` only when ``import cv2`` fails there, and records that in the report.
"""
from typing import Any, Callable, Dict

SAM_MTP_IMPORT_SHIM = True
__version__ = '0.0.0'

_CONSTANTS: Dict[str, int] = {}


def setNumThreads(num_threads: int) -> None:  # noqa: N802  (OpenCV's name)
    """mmengine's runner sets OpenCV's thread count; nothing to set here."""


class ocl:  # noqa: N801  (OpenCV's name)
    setUseOpenCL = staticmethod(lambda flag: None)


def _missing(name: str) -> Callable:

    def raise_missing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f'cv2.{name}: OpenCV is not installed here; the GPU check replaced it by an import-time '
                           'stand-in (dev/gpu_check/stand_ins/cv2_stand_in.py). Install opencv-python for this path.')

    raise_missing.__name__ = name
    return raise_missing


def __getattr__(name: str) -> Any:
    if name.startswith('__'):
        raise AttributeError(name)
    if name.isupper():  # IMREAD_COLOR, INTER_LINEAR, BORDER_CONSTANT, ...
        return _CONSTANTS.setdefault(name, len(_CONSTANTS) + 1)
    return _missing(name)
