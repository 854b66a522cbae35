"""Pretraining frames without SAM or a data set: label arrays and label files written with
``labels.formats.frame_labels``'s own writers, collated batches, and points with spatially coherent regions (the
tokenizer and training-step benchmarks, the GPU bench)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..labels.formats.frame_labels import group_weights, save_frame_labels, save_label_info


def make_frame_arrays(rng: np.random.Generator,
                      region_sizes: Sequence[int] = (40, 30, 20, 5),
                      num_unassigned: int = 10,
                      feature_dim: int = 8,
                      num_groups: int = 3,
                      region_spread: float = 0.2) -> Dict[str, np.ndarray]:
    """One frame: region r (1-based) has ``region_sizes[r-1]`` points scattered around its own centre;
    ``num_unassigned`` points have region 0. Points are shuffled so regions are not contiguous."""
    centres = rng.uniform(-2, 2, size=(len(region_sizes), 3))
    points, regions = [], []
    for r, size in enumerate(region_sizes, start=1):
        points.append(centres[r - 1] + rng.normal(0, region_spread, size=(size, 3)))
        regions.append(np.full(size, r))
    points.append(rng.uniform(-3, 3, size=(num_unassigned, 3)))
    regions.append(np.zeros(num_unassigned))
    order = rng.permutation(sum(region_sizes) + num_unassigned)
    pts = np.concatenate(points)[order].astype(np.float32)
    num_regions = len(region_sizes)
    return dict(
        points=pts,
        colors=rng.integers(0, 256, size=(len(pts), 3)).astype(np.uint8),
        point_region=np.concatenate(regions)[order].astype(np.int32),
        region_feat=rng.normal(size=(num_regions, feature_dim)).astype(np.float16),
        region_group=rng.integers(0, num_groups, size=num_regions).astype(np.int32),
        region_area=np.asarray(region_sizes, dtype=np.int32) * 10)


def write_label_split(root: str,
                      frames: List[Dict[str, np.ndarray]],
                      split: str = 'train',
                      num_groups: Optional[int] = 3,
                      with_groups: bool = True,
                      extra_metainfo: Optional[dict] = None) -> str:
    """Write ``frames`` as ``<root>/scene{i:04d}_00/000000.npz`` and the split info; returns the info path.

    Metainfo: ``feature_dim`` from the frames and, with ``with_groups``, ``num_groups``, ``group_counts``
    (regions per group over the split) and ``group_weights`` (the paper's formula).
    """
    data_list = []
    for i, arrays in enumerate(frames):
        rel = osp.join(f'scene{i:04d}_00', '000000.npz')
        save_frame_labels(osp.join(root, rel), arrays)
        data_list.append(dict(label_path=rel, scene_id=f'scene{i:04d}_00', frame_id=0,
                              num_regions=int(arrays['region_feat'].shape[0])))
    metainfo = dict(feature_dim=int(frames[0]['region_feat'].shape[1]))
    if with_groups:
        groups = np.concatenate([f['region_group'] for f in frames])
        counts = np.bincount(groups[groups >= 0], minlength=num_groups)
        metainfo.update(num_groups=num_groups, group_counts=counts.tolist(),
                        group_weights=group_weights(counts).tolist())
    metainfo.update(extra_metainfo or {})
    path = osp.join(root, f'{split}_labels.pkl')
    save_label_info(path, metainfo, data_list)
    return path


def make_collated_batch(seed: int = 0,
                        region_sizes_per_frame: Sequence[Sequence[int]] = ((40, 30, 20, 5), (25, 18, 12)),
                        num_unassigned: Sequence[int] = (12, 30),
                        feature_dim: int = 8,
                        num_groups: int = 3) -> dict:
    """A padded model batch (``sam_mtp_collate`` output) of frames of different sizes, without files."""
    from ..datasets.collate import sam_mtp_collate
    from ..datasets.transforms import PackFrameInputs

    rng = np.random.default_rng(seed)
    weights = group_weights(np.arange(1, num_groups + 1) * 10)
    pack = PackFrameInputs()
    items = []
    for sizes, n_u in zip(region_sizes_per_frame, num_unassigned):
        arrays = make_frame_arrays(rng, sizes, n_u, feature_dim, num_groups)
        results = dict(
            points=arrays['points'], point_region=arrays['point_region'].astype(np.int64),
            region_feat=arrays['region_feat'].astype(np.float32),
            region_group=arrays['region_group'].astype(np.int64),
            region_weight=weights[arrays['region_group']].astype(np.float32), num_groups=num_groups)
        items.append(pack(results))
    return sam_mtp_collate(items)


def region_points(batch: int, num_points: int, num_regions: int, extent: Sequence[float], unassigned: float,
                  generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, N, 3) points uniform in a box of size ``extent`` and (B, N) 1-based region ids: Voronoi cells around
    ``num_regions`` random seeds (spatially coherent, like SAM masks back-projected from one view), with a random
    ``unassigned`` fraction of the points in no region (0)."""
    extent = torch.tensor(extent)
    points = torch.rand(batch, num_points, 3, generator=generator) * extent
    seeds = torch.rand(batch, num_regions, 3, generator=generator) * extent
    region = torch.cdist(points, seeds).argmin(-1) + 1
    region[torch.rand(batch, num_points, generator=generator) < unassigned] = 0
    return points, region


def region_batch(batch: int, num_points: int, num_regions: int, feature_dim: int, num_groups: int,
                 generator: torch.Generator) -> Tuple[dict, dict]:
    """``(inputs, data_samples)`` of a collated batch in ``sam_mtp_collate``'s format, without files: points in a
    6 x 6 x 3 m box, :func:`region_points` regions (~10 % of the points in none), random region features and
    groups, every region valid and weighted 1 / ``num_groups``."""
    points, region = region_points(batch, num_points, num_regions, (6., 6., 3.), 0.1, generator)
    inputs = dict(points=points, point_region=region)
    data_samples = dict(
        region_feat=torch.randn(batch, num_regions, feature_dim, generator=generator),
        region_group=torch.randint(0, num_groups, (batch, num_regions), generator=generator),
        region_mask=torch.ones(batch, num_regions, dtype=torch.bool),
        region_weight=torch.full((batch, num_regions), 1.0 / num_groups),
        num_groups=torch.full((batch, ), num_groups))
    return inputs, data_samples
