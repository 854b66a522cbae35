"""Test stand-in for scene segments: ``<data_root>/scene_segments/<sample>.bin`` made from a voxel grid.

Real segments come from SAM masks (ScanNet: merged across views; SUN RGB-D: the sample's image; data without
images: a geometric over-segmentation). This stand-in only writes files of the real format (one raw int64 per
point of ``points/<sample>.bin``, same order, ``-1`` = none) so that SAM-token configs can run on mmdet3d's tiny
fixtures. It is the one place tests make segments for those fixtures: swap it for the real tool when that exists.
"""
import glob
import os
import os.path as osp

import numpy as np

__all__ = ['write_voxel_stand_in_segments']


def write_voxel_stand_in_segments(data_root: str, voxel_size: float = 1.0, load_dim: int = 6,
                                  unassigned_every: int = 10) -> int:
    """TEST STAND-IN: one segment per occupied ``voxel_size`` cube of each points file under ``data_root/points``.

    Every ``unassigned_every``-th point gets ``-1`` (no segment), so the fallback tokens are exercised too.
    Returns the number of files written.
    """
    out_dir = osp.join(data_root, 'scene_segments')
    os.makedirs(out_dir, exist_ok=True)
    paths = sorted(glob.glob(osp.join(data_root, 'points', '*.bin')))
    for path in paths:
        xyz = np.fromfile(path, dtype=np.float32).reshape(-1, load_dim)[:, :3]
        cells = np.floor((xyz - xyz.min(axis=0)) / voxel_size).astype(np.int64)
        _, segment = np.unique(cells, axis=0, return_inverse=True)
        segment = segment.reshape(-1).astype(np.int64)
        segment[::unassigned_every] = -1
        segment.tofile(osp.join(out_dir, osp.basename(path)))
    return len(paths)
