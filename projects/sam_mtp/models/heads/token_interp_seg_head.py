"""Semantic segmentation head that brings token features back to every input point.

Token features live at M token centres; each of the N input points takes the inverse-distance weighted mean of
its three nearest tokens (PointNet++ feature propagation), optionally concatenated with its own input features,
then a shared per-point MLP and a linear classifier. Use it with mmdet3d's ``EncoderDecoder3D``.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet3d.models.decode_heads.decode_head import Base3DDecodeHead
from mmdet3d.registry import MODELS
from torch import Tensor, nn

__all__ = ['TokenInterpolationSegHead', 'interpolate_tokens_to_points']

# Padded tokens are moved this far away so that they are never among a point's three nearest real tokens
# (and get a negligible weight when a scene has fewer than three real tokens).
_FAR_AWAY = 1e6


def _three_nn_torch(target: Tensor, source: Tensor, chunk: int = 8192) -> Tuple[Tensor, Tensor]:
    """mmcv ``three_nn`` semantics in plain torch: distances ``(B, n, 3)`` and int32 indices, ascending."""
    dists, idxs = [], []
    for start in range(0, target.shape[1], chunk):  # chunks bound the (B, chunk, m) distance matrix
        d2 = torch.cdist(target[:, start:start + chunk], source).square()
        best = d2.topk(3, dim=-1, largest=False, sorted=True)
        dists.append(best.values.clamp(min=0).sqrt())
        idxs.append(best.indices.int())
    return torch.cat(dists, 1), torch.cat(idxs, 1)


def _three_interpolate_torch(features: Tensor, idx: Tensor, weight: Tensor) -> Tensor:
    """mmcv ``three_interpolate`` semantics in plain torch: ``(B, C, m)`` -> ``(B, C, n)``."""
    batch, channels = features.shape[:2]
    n = idx.shape[1]
    gathered = torch.gather(features, 2, idx.long().reshape(batch, 1, n * 3).expand(batch, channels, n * 3))
    return (gathered.view(batch, channels, n, 3) * weight[:, None]).sum(-1)


def _point_ops():
    """The project's dispatching three-NN ops when present, else the plain torch versions above."""
    try:
        from projects.sam_mtp.ops import three_interpolate, three_nn
        return three_nn, three_interpolate
    except ImportError:
        return _three_nn_torch, _three_interpolate_torch


def interpolate_tokens_to_points(point_xyz: Tensor, token_xyz: Tensor, token_features: Tensor,
                                 padding_mask: Optional[Tensor] = None, eps: float = 1e-8) -> Tensor:
    """Three-NN inverse-distance interpolation of token features onto points.

    Args:
        point_xyz: ``(B, N, 3)`` target points.
        token_xyz: ``(B, M, 3)`` token centres, ``M >= 3``.
        token_features: ``(B, C, M)``.
        padding_mask: ``(B, M)`` bool, ``True`` for padded tokens, which are never used.
        eps: added to distances, so a point on a token takes (almost) exactly that token's feature.

    Returns:
        ``(B, C, N)`` with weights ``(1 / (d_i + eps)) / sum_j (1 / (d_j + eps))``.
    """
    if token_xyz.shape[1] < 3:
        raise ValueError(f'interpolate_tokens_to_points: needs at least 3 tokens, got {token_xyz.shape[1]}')
    if token_features.shape[-1] != token_xyz.shape[1]:
        raise ValueError(f'interpolate_tokens_to_points: token_features {tuple(token_features.shape)} do not '
                         f'match token_xyz {tuple(token_xyz.shape)}')
    if padding_mask is not None:
        token_xyz = torch.where(padding_mask[..., None], token_xyz.new_tensor(_FAR_AWAY), token_xyz)
    three_nn, three_interpolate = _point_ops()
    with torch.no_grad():  # the weights depend only on geometry, as in PointNet++
        dist, idx = three_nn(point_xyz.contiguous(), token_xyz.contiguous())
        inv = 1.0 / (dist + eps)
        weight = inv / inv.sum(dim=2, keepdim=True)
    return three_interpolate(token_features.contiguous(), idx, weight)


@MODELS.register_module()
class TokenInterpolationSegHead(Base3DDecodeHead):
    """Token features -> per-point logits.

    Reads from the backbone dict: ``fp_xyz[-1] (B, M, 3)`` and ``fp_features[-1] (B, C, M)`` (token centres and
    features), optional ``padding_mask (B, M)``, and the input points as mmdet3d's PointNet++ backbones
    expose them: ``sa_xyz[0] (B, N, 3)`` and ``sa_features[0] (B, C_in, N)`` (or ``None``).

    Args:
        in_channels: token feature channels C.
        point_channels: per-point input feature channels concatenated after interpolation (0: none).
        mlp_channels: widths of the shared per-point MLP (Conv1d-norm-act); the last one is ``channels``.
        Others: see ``Base3DDecodeHead`` (``num_classes``, ``dropout_ratio``, ``norm_cfg``, ``loss_decode``...).
    """

    def __init__(self, in_channels: int = 256, point_channels: int = 0,
                 mlp_channels: Sequence[int] = (256, 256), **kwargs) -> None:
        if not mlp_channels:
            raise ValueError('TokenInterpolationSegHead: mlp_channels must not be empty')
        super().__init__(channels=mlp_channels[-1], **kwargs)
        self.point_channels = point_channels
        layers = []
        prev = in_channels + point_channels
        for width in mlp_channels:
            layers.append(ConvModule(prev, width, kernel_size=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg,
                                     act_cfg=self.act_cfg))
            prev = width
        self.mlps = nn.Sequential(*layers)

    def _read_inputs(self, feat_dict: dict):
        for key in ('fp_xyz', 'fp_features', 'sa_xyz'):
            if key not in feat_dict:
                raise KeyError(f'TokenInterpolationSegHead: the backbone output has no "{key}" '
                               f'(keys: {list(feat_dict)})')
        point_features = feat_dict.get('sa_features', [None])[0]
        if self.point_channels:
            if point_features is None or point_features.shape[1] != self.point_channels:
                got = None if point_features is None else tuple(point_features.shape)
                raise ValueError(f'TokenInterpolationSegHead: point_channels={self.point_channels} needs '
                                 f'sa_features[0] of shape (B, {self.point_channels}, N), got {got}')
        return (feat_dict['sa_xyz'][0], feat_dict['fp_xyz'][-1], feat_dict['fp_features'][-1],
                feat_dict.get('padding_mask'), point_features)

    def forward(self, feat_dict: dict) -> Tensor:
        """Returns logits ``(B, num_classes, N)``."""
        point_xyz, token_xyz, token_features, padding_mask, point_features = self._read_inputs(feat_dict)
        x = interpolate_tokens_to_points(point_xyz, token_xyz, token_features, padding_mask)
        if self.point_channels:
            x = torch.cat([x, point_features], dim=1)
        return self.cls_seg(self.mlps(x))
