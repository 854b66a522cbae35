"""Installs the ``sam_mtp`` plugin package (``projects.sam_mtp``) into a prepared OpenMMLab environment.

``pip install -e .`` inside an environment made by ``tools/setup_env.sh`` (or your own mmdet3d stack).
"""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    lines = (ROOT / 'requirements' / f'{name}.txt').read_text().splitlines()
    return [line.split('#')[0].strip() for line in lines if line.split('#')[0].strip()]


setup(
    name='sam_mtp',
    version='0.1.0',
    description='SAM-guided masked token prediction (NeurIPS 2024) for mmdet3d',
    long_description=(ROOT / 'README.md').read_text() if (ROOT / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['projects', 'projects.*']),
    python_requires='>=3.9',
    # mmcv and mmdet3d are left out on purpose: mmcv needs a build matched to the user's torch/CUDA and
    # mmdet3d's declared dependencies cannot install (see README); tools/setup_env.sh installs both.
    install_requires=read_requirements('torch') + [
        r for r in read_requirements('runtime') if not r.startswith(('numba', 'open3d'))],
    extras_require={'tests': read_requirements('tests')},
    license='Apache-2.0',
)
