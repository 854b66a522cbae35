"""Building blocks of the 3DETR head: Fourier position encoding, query sampling, pre-norm decoder, MLPs."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    'FourierPositionEncoding', 'ThreeDETRDecoderLayer', 'ThreeDETRDecoder', 'PointwiseMLP',
    'normalize_to_scene', 'masked_furthest_point_sample', 'angle_to_bin', 'bin_to_angle', 'MIN_SCENE_EXTENT'
]

# Scenes are metres wide; a degenerate extent (e.g. a flat synthetic scene) must not divide by zero.
MIN_SCENE_EXTENT = 1e-3


def normalize_to_scene(xyz: Tensor, scene_min: Tensor, scene_max: Tensor) -> Tensor:
    """Map ``xyz (B, M, 3)`` into the unit cube of each scene's bounding box ``(B, 3)``."""
    extent = (scene_max - scene_min).clamp(min=MIN_SCENE_EXTENT)
    return (xyz - scene_min[:, None]) / extent[:, None]


class FourierPositionEncoding(nn.Module):
    """Random Fourier features of scene-normalised coordinates (Tancik et al. 2020), as used by 3DETR.

    ``enc(x) = [sin(2 pi x B), cos(2 pi x B)]`` with a fixed Gaussian ``B (3, num_feats/2)`` of std
    ``gauss_scale``. ``B`` is a persistent buffer, so a checkpoint reproduces the same encoding.
    """

    def __init__(self, num_feats: int = 256, in_dims: int = 3, gauss_scale: float = 1.0) -> None:
        super().__init__()
        if num_feats % 2:
            raise ValueError(f'FourierPositionEncoding: num_feats must be even, got {num_feats}')
        self.num_feats = num_feats
        self.register_buffer('gauss_b', torch.randn(in_dims, num_feats // 2) * gauss_scale)

    def forward(self, xyz: Tensor, scene_min: Tensor, scene_max: Tensor) -> Tensor:
        """``xyz (B, M, 3)`` -> ``(B, M, num_feats)``."""
        proj = (2 * math.pi) * normalize_to_scene(xyz, scene_min, scene_max) @ self.gauss_b.to(xyz.dtype)
        return torch.cat([proj.sin(), proj.cos()], dim=-1)


def masked_furthest_point_sample(xyz: Tensor, num_samples: int, valid: Optional[Tensor] = None) -> Tensor:
    """Furthest point sampling restricted to ``valid`` points; starts at the first valid point.

    Args:
        xyz: ``(B, M, 3)`` positions.
        num_samples: number of indices to return per sample.
        valid: ``(B, M)`` bool, ``False`` for padding. When a sample has fewer valid points than
            ``num_samples`` its first ``count`` picks are exactly its valid points; later picks repeat
            already chosen points and must be masked by the caller.

    Returns:
        ``(B, num_samples)`` long indices into ``M``.
    """
    batch, num_points = xyz.shape[:2]
    if valid is None and xyz.is_cuda and num_samples <= num_points:
        try:  # the compiled kernel, same start (index 0) and same greedy rule
            from mmcv.ops import furthest_point_sample
            return furthest_point_sample(xyz.float().contiguous(), num_samples).long()
        except (ImportError, RuntimeError):
            pass
    if valid is None:
        valid = torch.ones(batch, num_points, dtype=torch.bool, device=xyz.device)
    arange = torch.arange(batch, device=xyz.device)
    # Padding gets -1 so that it never wins the arg-max while any valid point remains.
    min_dist = torch.where(valid, torch.full_like(xyz[..., 0], float('inf')), torch.full_like(xyz[..., 0], -1.0))
    current = valid.to(torch.uint8).argmax(dim=1)
    picks = []
    with torch.no_grad():
        for _ in range(num_samples):
            picks.append(current)
            dist = (xyz - xyz[arange, current][:, None]).square().sum(-1)
            min_dist = torch.where(valid, torch.minimum(min_dist, dist), min_dist)
            current = min_dist.argmax(dim=1)
    return torch.stack(picks, dim=1)


class PointwiseMLP(nn.Module):
    """3DETR's ``GenericMLP`` with kernel-1 convolutions: the same MLP applied to every token (row).

    Hidden layers are ``Linear(bias=hidden_bias) [-> BatchNorm1d] -> ReLU [-> Dropout]``, the output layer
    ``Linear(bias=output_bias) [-> BatchNorm1d] [-> ReLU]``. A kernel-1 ``Conv1d`` over ``(B, C, N)`` is this
    ``Linear`` over rows, with the same parameters.

    ``forward(x, valid)`` takes ``x (..., C)`` and an optional bool mask ``valid`` of ``x.shape[:-1]``: only valid
    rows go through the MLP, so BatchNorm's batch statistics never include padded tokens or masked queries
    (3DETR has neither, so with every row valid this is exactly its module); invalid rows of the output are 0.
    A training batch with a single valid row (a scene whose segments give one token) has no batch statistics:
    its BatchNorm layers then normalise with their running statistics, as in eval mode, instead of raising.
    """

    def __init__(self, in_channels: int, hidden_channels: Sequence[int], out_channels: int,
                 norm: bool = False, dropout: float = 0.0, hidden_bias: bool = False, output_bias: bool = True,
                 output_norm: bool = False, output_act: bool = False) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        prev = in_channels
        for hidden in hidden_channels:
            layers.append(nn.Linear(prev, hidden, bias=hidden_bias))
            if norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = hidden
        layers.append(nn.Linear(prev, out_channels, bias=output_bias))
        if output_norm:
            layers.append(nn.BatchNorm1d(out_channels))
        if output_act:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor, valid: Optional[Tensor] = None) -> Tensor:
        if valid is None:
            return self.layers(x.reshape(-1, x.shape[-1])).view(*x.shape[:-1], self.out_channels)
        if valid.shape != x.shape[:-1]:
            raise ValueError(f'PointwiseMLP: valid mask {tuple(valid.shape)} does not match the rows '
                             f'{tuple(x.shape[:-1])}')
        rows = x[valid]
        if self.training and rows.shape[0] < 2:
            rows = self._forward_with_running_stats(rows)
        else:
            rows = self.layers(rows)
        # The output takes the MLP's dtype, not the input's: under autocast the Linear layers return half
        # precision from float32 input, and index_put refuses a source of another dtype.
        out = rows.new_zeros(*x.shape[:-1], self.out_channels)
        out[valid] = rows
        return out

    def _forward_with_running_stats(self, rows: Tensor) -> Tensor:
        norms = [m for m in self.layers if isinstance(m, nn.BatchNorm1d)]
        for m in norms:
            m.eval()
        try:
            return self.layers(rows)
        finally:
            for m in norms:
                m.train()


class ThreeDETRDecoderLayer(nn.Module):
    """Pre-norm DETR decoder layer: self-attention over queries, cross-attention to encoder tokens, FFN.

    Positions enter every attention as additive embeddings on queries and keys (never on values).
    Masks follow ``nn.MultiheadAttention``: ``True`` marks padding to be ignored.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 4, feedforward_channels: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dims, feedforward_channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(feedforward_channels, embed_dims))
        self.norms = nn.ModuleList([nn.LayerNorm(embed_dims) for _ in range(3)])
        self.dropouts = nn.ModuleList([nn.Dropout(dropout) for _ in range(3)])

    def forward(self, query: Tensor, memory: Tensor, query_pos: Tensor, key_pos: Tensor,
                query_padding_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None) -> Tensor:
        x = self.norms[0](query)
        q = x + query_pos
        query = query + self.dropouts[0](
            self.self_attn(q, q, x, key_padding_mask=query_padding_mask, need_weights=False)[0])
        x = self.norms[1](query)
        query = query + self.dropouts[1](
            self.cross_attn(x + query_pos, memory + key_pos, memory, key_padding_mask=key_padding_mask,
                            need_weights=False)[0])
        query = query + self.dropouts[2](self.ffn(self.norms[2](query)))
        return query


class ThreeDETRDecoder(nn.Module):
    """Stack of :class:`ThreeDETRDecoderLayer` returning every layer's output after a shared LayerNorm.

    Every layer's output feeds the (shared) prediction heads, which gives the auxiliary losses. Every weight
    matrix (attention projections, FFN) is xavier-uniform initialised, as 3DETR's decoder is.
    """

    def __init__(self, num_layers: int = 8, embed_dims: int = 256, num_heads: int = 4,
                 feedforward_channels: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f'ThreeDETRDecoder: num_layers must be >= 1, got {num_layers}')
        self.layers = nn.ModuleList([
            ThreeDETRDecoderLayer(embed_dims, num_heads, feedforward_channels, dropout)
            for _ in range(num_layers)
        ])
        self.norm = nn.LayerNorm(embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform for every parameter with more than one dimension (norms and biases keep theirs)."""
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)

    def forward(self, query: Tensor, memory: Tensor, query_pos: Tensor, key_pos: Tensor,
                query_padding_mask: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """Returns ``(num_layers, B, Q, C)``."""
        outputs = []
        for layer in self.layers:
            query = layer(query, memory, query_pos, key_pos, query_padding_mask, key_padding_mask)
            outputs.append(self.norm(query))
        return torch.stack(outputs, dim=0)


def angle_to_bin(angle: Tensor, num_bins: int) -> Tuple[Tensor, Tensor]:
    """Heading -> (bin index, residual normalised to [-1, 1] by half a bin width).

    Bin ``i`` is centred at ``i * 2 pi / num_bins``; angles are wrapped into ``[0, 2 pi)`` first.
    """
    bin_width = 2 * math.pi / num_bins
    shifted = torch.remainder(angle + bin_width / 2, 2 * math.pi)
    bin_idx = torch.div(shifted, bin_width, rounding_mode='floor').long().clamp(max=num_bins - 1)
    residual = shifted - (bin_idx.to(angle.dtype) * bin_width + bin_width / 2)
    return bin_idx, residual / (bin_width / 2)


def bin_to_angle(bin_idx: Tensor, residual_normalized: Tensor, num_bins: int) -> Tensor:
    """Inverse of :func:`angle_to_bin`, wrapped into ``(-pi, pi]``."""
    bin_width = 2 * math.pi / num_bins
    angle = bin_idx.to(residual_normalized.dtype) * bin_width + residual_normalized * (bin_width / 2)
    return torch.atan2(angle.sin(), angle.cos())
