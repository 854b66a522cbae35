"""Import-time stand-in for scipy, used by the GPU check only on a machine that lacks scipy.

It holds one real piece of scipy: ``scipy.optimize.linear_sum_assignment``, scipy's own compiled module
(``_lsap``, BSD-3-Clause, licence alongside) taken by prepare.sh from the scipy wheel this project tests with.
3DETR's Hungarian matching (mmdet's ``HungarianAssigner``) needs it; the full scipy wheel (35 MB) does not fit in
what the GPU check may carry (docs/gpu_check.md). mmdet imports other parts of scipy at module level
(``from scipy.sparse import csr_matrix`` in a CrowdHuman metric) without using them on the check's paths: every
other ``scipy.*`` module imports, and each of its names is a function that raises when called, so no result can
come from this stand-in.

Never installed into an environment: the GPU check writes this file as ``scipy/__init__.py`` (and
``scipy_optimize_stand_in.py`` as ``scipy/optimize/__init__.py``) into its work folder and puts that on
``PYTHONPATH`` only when ``import scipy`` fails there, and records that in the report.
"""
import importlib.abc
import importlib.machinery
import sys
import types

SAM_MTP_IMPORT_SHIM = True
__version__ = '0.0.0'
_MESSAGE = ('scipy is not installed here; the GPU check replaced it by an import-time stand-in '
            '(dev/gpu_check/stand_ins/scipy_stand_in.py) that only has scipy.optimize.linear_sum_assignment')


def missing(qualified_name: str):
    """A stand-in for one scipy name: calling it raises."""

    def raise_missing(*args, **kwargs):
        raise RuntimeError(f'{qualified_name}: {_MESSAGE}')

    raise_missing.__name__ = qualified_name.rsplit('.', 1)[-1]
    raise_missing.__qualname__ = qualified_name
    return raise_missing


class _StandInLoader(importlib.abc.Loader):

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []  # a package, so that its submodules come here too
        module.__getattr__ = lambda name: (_ for _ in ()).throw(AttributeError(name)) if name.startswith('__') \
            else missing(f'{spec.name}.{name}')
        return module

    def exec_module(self, module):
        pass


class _StandInFinder(importlib.abc.MetaPathFinder):
    """Every scipy submodule except the real scipy.optimize here is a stand-in module."""

    def find_spec(self, name, path=None, target=None):
        if name.startswith('scipy.') and name != 'scipy.optimize' and not name.startswith('scipy.optimize.'):
            return importlib.machinery.ModuleSpec(name, _StandInLoader(), is_package=True)
        return None


if not any(isinstance(f, _StandInFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _StandInFinder())
