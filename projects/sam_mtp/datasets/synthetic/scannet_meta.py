"""Readers of ScanNet's per-scan meta file (``scans/<scene>/<scene>.txt``), shared with the label tooling."""
import os.path as osp
from typing import Dict

import numpy as np


def read_scannet_meta(path: str) -> Dict[str, str]:
    """Parse a ScanNet ``<scene>.txt`` meta file (``key = value`` lines) into a dict of strings."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: ScanNet meta file does not exist')
    meta = {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            if '=' not in line:
                raise ValueError(f'{path}:{line_no}: expected "key = value", got {line.strip()!r}')
            key, value = line.split('=', 1)
            meta[key.strip()] = value.strip()
    return meta


def load_axis_align_matrix(path: str) -> np.ndarray:
    """The 4x4 raw-to-aligned ``axisAlignment`` of a ScanNet meta file (identity when the key is absent,
    as for ScanNet's test scans)."""
    meta = read_scannet_meta(path)
    if 'axisAlignment' not in meta:
        return np.eye(4)
    values = meta['axisAlignment'].split()
    if len(values) != 16:
        raise ValueError(f'{path}: axisAlignment must have 16 numbers, got {len(values)}')
    return np.array([float(x) for x in values]).reshape(4, 4)
