"""The install lock: requirements/lock.txt pins the whole CPU stack, setup_env.sh installs with it, and the GPU check's
wheel list and scipy pin are derived from it (dev/update_lock.py)."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_update_lock():
    spec = importlib.util.spec_from_file_location('update_lock', ROOT / 'dev' / 'update_lock.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


update_lock = _load_update_lock()
LOCK = update_lock.read_lock((ROOT / 'requirements' / 'lock.txt').read_text())


def _requirement_lines():
    """(file name, normalised name, pinned version or None) of every requirement line but the lock's."""
    for path in sorted((ROOT / 'requirements').glob('*.txt')):
        if path.name == 'lock.txt':
            continue
        for raw in path.read_text().splitlines():
            line = raw.split('#')[0].strip()
            if line:
                match = re.match(r'([A-Za-z0-9_.\-]+)\s*(?:==\s*([^\s;,]+))?', line)
                yield path.name, update_lock.normalise(match.group(1)), match.group(2)


def test_lock_pins_every_requirement_at_its_own_pin():
    for file_name, name, pinned in _requirement_lines():
        assert name in LOCK, f'{name} of requirements/{file_name} is not in requirements/lock.txt'
        if pinned is not None:
            assert LOCK[name] == pinned, f'{name}: requirements/{file_name} pins {pinned}, the lock {LOCK[name]}'
    # The packages whose drift broke fresh installs before the lock, and the build tools, are locked too.
    for name in ('markdown', 'pytest', 'setuptools', 'pip', 'scipy', 'mmcv'):
        assert name in LOCK, name


def test_every_pip_install_of_setup_env_uses_the_lock():
    text = (ROOT / 'tools' / 'setup_env.sh').read_text()
    assert re.search(r'LOCK_ARGS=\(-c "\$REQ/lock\.txt"\)', text)
    pip_q = re.search(r'pip_q\(\) \{(.*)\}', text).group(1)
    assert '"${LOCK_ARGS[@]}"' in pip_q and 'pip install' in pip_q
    # No pip install bypasses pip_q (the mmcv wheel build uses `pip wheel --no-deps` of an exact version).
    for line in text.splitlines():
        if 'pip install' in line and not line.lstrip().startswith('#'):
            assert line.lstrip().startswith('pip_q()'), line


def test_the_environment_equals_the_lock():
    """make test runs in the venv that setup_env.sh made with the lock: any drift is a broken lock."""
    environment = update_lock.environment_versions()
    drift = {name: (version, environment.get(name)) for name, version in LOCK.items()
             if environment.get(name) != version}
    assert not drift, f'installed differs from requirements/lock.txt (lock, installed): {drift}'


def test_gpu_wheel_list_and_prepare_are_derived_from_the_lock():
    wheels = (ROOT / 'dev' / 'gpu_check' / 'wheels.txt').read_text()
    assert update_lock.derive_wheel_list(wheels, LOCK) == wheels, 'rerun dev/update_lock.py'
    prepare = (ROOT / 'dev' / 'gpu_check' / 'prepare.sh').read_text()
    assert update_lock.derive_prepare(prepare, LOCK) == prepare, 'rerun dev/update_lock.py'
    assert f'SCIPY_FOR_LSAP="scipy=={LOCK["scipy"]}"' in prepare


def test_derive_wheel_list_takes_the_lock_version_unless_told_why_not():
    lock = {'markdown': '3.11.4', 'numpy': '2.3.5', 'torchvision': '0.27.1'}
    text = ('# comment line\n'
            'Markdown==3.11.3\n'
            'numpy==2.3.4  # the numeric base\n'
            'torchvision==0.26.0  # if-absent(torchvision); != lock: pairs with the machine\'s torch 2.11\n')
    derived = update_lock.derive_wheel_list(text, lock).splitlines()
    assert derived == ['# comment line', 'Markdown==3.11.4', 'numpy==2.3.5  # the numeric base',
                       "torchvision==0.26.0  # if-absent(torchvision); != lock: pairs with the machine's torch 2.11"]
    with pytest.raises(ValueError, match=r'wheels.txt:1: einops is not in requirements/lock.txt'):
        update_lock.derive_wheel_list('einops==0.8.2\n', lock)


def test_lock_round_trip_and_malformed_line():
    text = update_lock.render_lock({'b-pkg': '2.0', 'a-pkg': '1.0'}, '3.11')
    assert text.splitlines()[-2:] == ['a-pkg==1.0', 'b-pkg==2.0']
    assert update_lock.read_lock(text) == {'a-pkg': '1.0', 'b-pkg': '2.0'}
    with pytest.raises(ValueError, match=r'lock.txt:2: expected "name==version"'):
        update_lock.read_lock('a==1\nb>=2\n')
    assert update_lock.normalise('Segment_Anything') == 'segment-anything'
