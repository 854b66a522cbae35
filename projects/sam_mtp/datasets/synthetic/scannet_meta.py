"""Readers of ScanNet's per-scan meta file (``scans/<scene>/<scene>.txt``); its ``axisAlignment`` parser is the label
tooling's (``labels/formats/frames.py``), re-exported here."""
import os.path as osp
from typing import Dict

from projects.sam_mtp.labels.formats.frames import load_axis_align_matrix  # noqa: F401


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
