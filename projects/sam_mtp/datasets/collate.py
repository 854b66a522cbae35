"""Batching of frames with different numbers of points and regions."""
from typing import List, Sequence

import torch
from mmengine.registry import FUNCTIONS

# Padding values; -1 in point_region is what the tokenizers read as "padding point".
POINT_PAD_REGION = -1
REGION_PAD_GROUP = -1


@FUNCTIONS.register_module()
def sam_mtp_collate(data_batch: Sequence[dict]) -> dict:
    """Collate ``PackFrameInputs`` outputs into padded tensors.

    Registered in mmengine's root ``FUNCTIONS`` registry, so ``collate_fn=dict(type='sam_mtp_collate')``
    resolves under any default scope.

    Returns ``dict(inputs=dict(points (B, N_max, 3), point_region (B, N_max)), data_samples=dict(
    region_feat (B, R_max, D), region_weight (B, R_max), region_group (B, R_max), region_mask (B, R_max),
    num_groups (B,), num_points (B,), metainfo [B dicts]))``. Padded points are zeros with region -1;
    padded regions are zero targets with weight 0, group -1 and ``region_mask`` False.
    """
    if len(data_batch) == 0:
        raise ValueError('sam_mtp_collate: empty batch')
    for i, item in enumerate(data_batch):
        if not isinstance(item, dict) or 'inputs' not in item or 'data_samples' not in item:
            raise ValueError(f'sam_mtp_collate: item {i} is not a PackFrameInputs output (needs "inputs" and '
                             f'"data_samples"), got {type(item).__name__}')
    points: List[torch.Tensor] = [item['inputs']['points'] for item in data_batch]
    regions: List[torch.Tensor] = [item['inputs']['point_region'] for item in data_batch]
    samples = [item['data_samples'] for item in data_batch]
    batch = len(data_batch)
    num_points = torch.tensor([len(p) for p in points], dtype=torch.long)
    max_points = int(num_points.max())
    out_points = points[0].new_zeros(batch, max_points, 3)
    out_region = torch.full((batch, max_points), POINT_PAD_REGION, dtype=torch.long)
    for b, (p, r) in enumerate(zip(points, regions)):
        out_points[b, :len(p)] = p
        out_region[b, :len(r)] = r
    inputs = dict(points=out_points, point_region=out_region)

    feats = [s['region_feat'] for s in samples]
    dims = {f.shape[1] for f in feats}
    if len(dims) != 1:
        paths = [s.get('metainfo', {}).get('label_path', '?') for s in samples]
        raise ValueError(f'sam_mtp_collate: frames have different region_feat widths {sorted(dims)}: {paths}')
    num_regions = [len(f) for f in feats]
    max_regions = max(max(num_regions), 1)
    region_feat = torch.zeros(batch, max_regions, dims.pop(), dtype=torch.float32)
    region_weight = torch.zeros(batch, max_regions, dtype=torch.float32)
    region_group = torch.full((batch, max_regions), REGION_PAD_GROUP, dtype=torch.long)
    region_mask = torch.zeros(batch, max_regions, dtype=torch.bool)
    for b, s in enumerate(samples):
        r = num_regions[b]
        region_feat[b, :r] = s['region_feat'].float()
        region_weight[b, :r] = s['region_weight'].float() if 'region_weight' in s else 1.
        if 'region_group' in s:
            region_group[b, :r] = s['region_group'].long()
        region_mask[b, :r] = True
    data_samples = dict(
        region_feat=region_feat,
        region_weight=region_weight,
        region_group=region_group,
        region_mask=region_mask,
        num_groups=torch.tensor([int(s.get('num_groups', 1)) for s in samples], dtype=torch.long),
        num_points=num_points,
        metainfo=[s.get('metainfo', {}) for s in samples])
    return dict(inputs=inputs, data_samples=data_samples)
