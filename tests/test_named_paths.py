"""Every script and file of this repository that the Makefile, .ci/run, README.md and docs/*.md name exists: a
rename that misses one of them (as `make demo` once ran a config's file name) fails here, not on a user's machine.
Config paths are checked by tests/test_config_paths.py."""
import glob
import os.path as osp
import re

import pytest
from helpers.paths import expand

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
NAMING_FILES = ['Makefile', osp.join('.ci', 'run'), 'README.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md')))
# A path starting at one of this repository's top-level folders, not preceded by another path component.
# Shell globs (`test_3detr*.py`) and brace alternatives (`{scannet,sunrgbd}`) are kept and written out.
PATH = re.compile(r'(?<![\w/.-])((?:tools|dev|benchmarks|tests|requirements|projects/sam_mtp|\.ci)/[\w/.*{},-]*\w)')
# mmdet3d's own paths, which the docs name as mmdet3d's (its converter tools and its tests' SUN RGB-D fixture).
MMDET3D_PATHS = ('tools/create_data.py', 'tools/dataset_converters/', 'tests/data/sunrgbd')


def named_paths(rel):
    """(line number, path) of every repository path named in file ``rel``."""
    with open(osp.join(REPO, rel)) as f:
        return [(i, p) for i, line in enumerate(f, 1) for p in PATH.findall(line)]


def exists(path):
    # docs/downstream.md names benchmark configs relative to configs/sam_mtp/, as docs/configs.md asks.
    return all(glob.glob(osp.join(REPO, p)) or glob.glob(osp.join(REPO, 'configs', 'sam_mtp', p))
               for p in expand(path))


@pytest.mark.parametrize('rel', NAMING_FILES)
def test_every_repository_path_named_exists(rel):
    missing = [f'{rel}:{i}: {p}' for i, p in named_paths(rel)
               if not p.startswith(MMDET3D_PATHS) and not exists(p)]
    assert not missing, missing


def test_make_demo_and_make_test_run_existing_scripts():
    names = dict(named_paths('Makefile'))
    assert 'tools/demo.py' in names.values() and 'tools/setup_env.sh' in names.values()


def test_the_path_pattern_finds_paths_and_skips_other_repositories_and_urls():
    line = ('run `tools/demo.py`, see dev/gpu_check/run.sh. models/Point_MAE.py and '
            'https://github.com/x/tools/y.py and configs/sam_mtp/x.py are not ours; tests/a/b_{c,d}*.py')
    assert PATH.findall(line) == ['tools/demo.py', 'dev/gpu_check/run.sh', 'tests/a/b_{c,d}*.py']
    assert expand('tests/a/b_{c,d}*.py') == ['tests/a/b_c*.py', 'tests/a/b_d*.py']
    assert exists('tests/models/test_3detr*.py') and not exists('tests/models/test_{3detr,nothing}*.py')
