"""``scipy.optimize`` of the scipy stand-in (written as ``scipy/optimize/__init__.py``, see
``scipy_stand_in.py``): ``linear_sum_assignment`` only, scipy's compiled ``_lsap`` module, copied next to this file
by the GPU check from the folder prepare.sh filled. Other names of scipy.optimize are stand-ins that raise
when called."""
import glob
import importlib.util
import os
import sys

# The stand-in scipy package, which the import system loads before its optimize module.
missing = sys.modules['scipy'].missing

_found = glob.glob(os.path.join(os.path.dirname(__file__), '_lsap*.so'))
if not _found:
    raise ImportError('scipy stand-in of the GPU check: _lsap*.so was not copied here (run prepare.sh and carry '
                      '.whl/)')
_spec = importlib.util.spec_from_file_location('scipy.optimize._lsap', _found[0])
_lsap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lsap)
linear_sum_assignment = _lsap.linear_sum_assignment


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return missing(f'scipy.optimize.{name}')
