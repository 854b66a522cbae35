"""Import-time stand-in for scipy, used by the GPU check only on a machine that lacks scipy.

It holds one real piece of scipy: ``scipy.optimize.linear_sum_assignment``, scipy's own compiled module
(``_lsap``, BSD-3-Clause, licence alongside) taken by prepare.sh from the scipy wheel this project tests with.
3DETR's Hungarian matching (mmdet's ``HungarianAssigner``) needs it; the full scipy wheel (35 MB) does not fit in
what the GPU check may carry (docs/gpu_check.md). Importing any other part of scipy raises ModuleNotFoundError.

Never installed into an environment: run.sh puts this folder on ``PYTHONPATH`` only when ``import scipy`` fails
there, and records that in the report.
"""
import importlib.abc
import sys

SAM_MTP_IMPORT_SHIM = True
__version__ = '0.0.0'


class _OnlyOptimize(importlib.abc.MetaPathFinder):
    """Refuse every scipy submodule but ``scipy.optimize`` with a message that names the stand-in."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith('scipy.') and not name.startswith('scipy.optimize'):
            raise ModuleNotFoundError(
                f'{name}: scipy is not installed here; the GPU check replaced it by an import-time stand-in '
                '(tools/gpu_check/shims/scipy) that only has scipy.optimize.linear_sum_assignment', name=name)
        return None


sys.meta_path.insert(0, _OnlyOptimize())
