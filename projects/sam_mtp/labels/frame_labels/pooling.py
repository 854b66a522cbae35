"""Region pooling of a patch-feature grid bilinearly up-sampled to the mask resolution.

The result equals pooling ``F.interpolate(features, size=(H, W), mode='bilinear', align_corners=False)`` inside
each region, but the (D, H, W) up-sampled tensor (about 1 GB for ViT-B at 640x480) is never built:

* **mean**: up-sampling is linear, so a region's mean is ``A_r @ features`` where ``A_r`` (h*w weights) sums
  the bilinear weights of the region's pixels; ``A`` is accumulated per row-run of a region (prefix sums of
  the x-weights), a few thousand runs instead of H*W pixels.
* **max**: along an image row the up-sampled map is piecewise linear in the column, with breaks where the
  source index changes; so the maximum over a region's run of pixels in a row is reached at the run's ends or
  next to a break. The same holds along columns. The maximum over the region is therefore reached on a small
  candidate set (row-run ends, and in break columns the column-run ends and break rows), about 5 % of the
  pixels; the features are interpolated exactly there and reduced with ``scatter_reduce``.

Both are exact (up to float rounding) and vectorised; only the D axis is processed in chunks to bound memory.
"""
from typing import Optional, Tuple, Union

import numpy as np
import torch


def _axis_weights(out_size: int, in_size: int, device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (i0, i1) and weight of i1 for each output index, as ``F.interpolate`` computes them
    for ``mode='bilinear', align_corners=False`` with an explicit output size."""
    scale = in_size / out_size
    src = ((torch.arange(out_size, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(in_size - 1)
    i1 = (i0 + 1).clamp_max(in_size - 1)
    w1 = torch.where(i1 > i0, src - i0, torch.zeros_like(src))
    return i0, i1, w1


def _break_mask(i0: torch.Tensor) -> torch.Tensor:
    """Output indices next to a change of the source index (the breaks of the piecewise-linear profile)."""
    change = i0[1:] != i0[:-1]
    mask = torch.zeros_like(i0, dtype=torch.bool)
    mask[1:] |= change
    mask[:-1] |= change
    return mask


def _max_candidates(ids: torch.Tensor, col_breaks: torch.Tensor, row_breaks: torch.Tensor) -> torch.Tensor:
    """Boolean (H, W) map of the pixels on which every region's maximum is reached."""
    row_end = torch.ones_like(ids, dtype=torch.bool)
    row_end[:, 1:-1] = (ids[:, 1:-1] != ids[:, :-2]) | (ids[:, 1:-1] != ids[:, 2:])
    col_end = torch.ones_like(ids, dtype=torch.bool)
    col_end[1:-1] = (ids[1:-1] != ids[:-2]) | (ids[1:-1] != ids[2:])
    in_break_col = col_breaks[None, :] & (col_end | row_breaks[:, None])
    return (row_end | in_break_col) & (ids > 0)


def pool_region_features(features: torch.Tensor, region_map: Union[np.ndarray, torch.Tensor],
                         num_regions: Optional[int] = None, channel_chunk: int = 256
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and max of the bilinearly up-sampled features inside each region.

    Args:
        features: (D, h, w) patch features covering the whole image.
        region_map: (H, W) integer region ids, 0 = no region, 1..R.
        num_regions: R (default: the map's maximum).
        channel_chunk: channels gathered at a time for the max (bounds memory for large D).

    Returns:
        (mean, max), each (R, D) float32 on ``features``' device. A region id without pixels gets zeros.
    """
    if features.dim() != 3:
        raise ValueError(f'features must have shape (D, h, w), got {tuple(features.shape)}')
    device = features.device
    ids = torch.as_tensor(np.asarray(region_map) if not torch.is_tensor(region_map) else region_map,
                          device=device).long()
    if ids.dim() != 2:
        raise ValueError(f'region_map must have shape (H, W), got {tuple(ids.shape)}')
    if ids.numel() and int(ids.min()) < 0:
        raise ValueError('region_map must not contain negative ids')
    height, width = ids.shape
    dim, fh, fw = features.shape
    num_regions = int(ids.max()) if num_regions is None else int(num_regions)
    mean = torch.zeros((num_regions, dim), device=device, dtype=torch.float32)
    peak = torch.zeros((num_regions, dim), device=device, dtype=torch.float32)
    if num_regions == 0:
        return mean, peak
    flat_feats = features.float().reshape(dim, fh * fw)
    y0, y1, wy = _axis_weights(height, fh, device)
    x0, x1, wx = _axis_weights(width, fw, device)

    # Interpolation along x as a (w, W) matrix: column x of the map mixes grid columns x0[x] and x1[x].
    interp_x = torch.zeros(fw, width, device=device, dtype=torch.float64)
    columns = torch.arange(width, device=device)
    interp_x.index_put_((x0, columns), 1 - wx.double(), accumulate=True)
    interp_x.index_put_((x1, columns), wx.double(), accumulate=True)

    # mean: A (R, h*w) holds the summed bilinear weights of each region's pixels. Built per row-run of a
    # region (a few thousand runs instead of H*W pixels): a run's x-weights are a difference of prefix sums,
    # spread over its row's two source rows.
    flat_ids = ids.reshape(-1)
    run_start = torch.ones_like(ids, dtype=torch.bool)
    run_start[:, 1:] = ids[:, 1:] != ids[:, :-1]
    starts = torch.nonzero(run_start.reshape(-1)).squeeze(1)  # every row begins a run, so runs never wrap
    ends = torch.cat([starts[1:], starts.new_tensor([height * width])]) - 1
    run_region = flat_ids.index_select(0, starts)
    keep = run_region > 0
    starts, ends, run_region = starts[keep], ends[keep], run_region[keep] - 1
    run_row = starts // width
    prefix = torch.cat([interp_x.new_zeros(1, fw), interp_x.t().cumsum(0)])  # (W + 1, w)
    summed = (prefix.index_select(0, ends % width + 1) - prefix.index_select(0, starts % width)).float()
    run_wy = wy.index_select(0, run_row)[:, None]
    weights = torch.zeros(num_regions * fh, fw, device=device, dtype=torch.float32)
    weights.index_add_(0, run_region * fh + y0.index_select(0, run_row), summed * (1 - run_wy))
    weights.index_add_(0, run_region * fh + y1.index_select(0, run_row), summed * run_wy)
    counts = torch.bincount(run_region, ends - starts + 1, minlength=num_regions)
    mean = weights.reshape(num_regions, fh * fw) @ flat_feats.t()
    mean /= counts.clamp_min(1)[:, None].float()

    # max: exact interpolation on the candidate pixels only. Interpolate along x first for every source row
    # (D, h, W: small), then along y at the candidates.
    cand = _max_candidates(ids, _break_mask(x0), _break_mask(y0))
    pixels = torch.nonzero(cand.reshape(-1)).squeeze(1)
    region = flat_ids.index_select(0, pixels) - 1
    rows, cols = pixels // width, pixels % width
    top_index = y0.index_select(0, rows) * width + cols
    bottom_index = y1.index_select(0, rows) * width + cols
    rwy = wy.index_select(0, rows)
    interp_x = interp_x.float()  # x first by a matrix product: much faster than gathering columns
    for start in range(0, dim, channel_chunk):  # loop over channel chunks only
        chunk = features[start:start + channel_chunk].float()  # (c, h, w)
        along_x = (chunk.reshape(-1, fw) @ interp_x).reshape(chunk.shape[0], fh * width)
        values = torch.lerp(along_x.index_select(1, top_index), along_x.index_select(1, bottom_index), rwy)
        out = torch.full((values.shape[0], num_regions), -torch.inf, device=device)
        out.scatter_reduce_(1, region[None].expand_as(values), values, reduce='amax', include_self=True)
        peak[:, start:start + values.shape[0]] = out.t()
    peak[counts == 0] = 0
    return mean, peak
