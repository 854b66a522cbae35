"""3DETR's point encoder (Misra et al., ICCV 2021) as an mmdet3d backbone: the paper's "3DETR" baseline rows.

Data flow (B scenes, N input points, M = ``num_points`` tokens)::

    points (B, N, 3 [+ C])
      -> set abstraction: FPS to M centres, ball query (radius, num_samples), shared MLP, max-pool (B, C, M)
      -> transformer encoder: pre-norm layers (self-attention, ReLU FFN), no positional encoding  (B, M, C)
         masked variant (3DETR-m): layer i attends only within masking_radius[i] of each token, and after the
         first layer a second set abstraction halves the tokens (M -> M / 2)
      -> fp_xyz / fp_features / fp_indices (the dict ThreeDETRHead reads)

Defaults are 3DETR's ``--enc_type vanilla`` (models/model_3detr.py ``build_preencoder``/``build_encoder``):
2048 centres, radius 0.2, 64 samples, MLP 64-128-256, 3 layers of width 256 with 4 heads, FFN 128,
dropout 0.1. :class:`ThreeDETRMaskedEncoder` has ``--enc_type masked``'s. Initialisation as in 3DETR:
xavier-uniform for the transformer's weight matrices, kaiming-normal (fan-in) for the set-abstraction
convolutions.
"""
from typing import Optional, Sequence

import torch
from mmdet3d.models.layers.pointnet_modules import PointSAModule
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from .downstream_backbone import sassg_outputs

__all__ = ['ThreeDETREncoder', 'ThreeDETRMaskedEncoder']


@MODELS.register_module()
class ThreeDETREncoder(BaseModule):
    """Set abstraction to ``num_points`` tokens, then a transformer encoder (optionally radius-masked).

    Args:
        in_channels: point columns, xyz first (3: xyz only, as 3DETR without colour).
        num_points, radius, num_samples, sa_channels: the set-abstraction layer (2048, 0.2, 64, (64, 128, 256));
            its last width is the transformer width.
        num_layers, num_heads, feedforward_channels, dropout: the encoder layers (3, 4, 128, 0.1).
        masking_radius: ``None`` for the plain encoder; otherwise one radius (metres) per layer, a token attending
            only to tokens closer than it (0 = no mask). 3DETR-m's code writes ``[r ** 2 for r in (0.4, 0.8,
            1.2)]`` and compares those values with Euclidean (not squared) distances, so its effective radii are
            0.16, 0.64 and 1.44 m; pass those to reproduce it.
        downsample_cfg: with masking, the set abstraction after the first layer: ``dict(num_point, radius,
            num_sample, mlp_channels)`` (3DETR-m: 1024, 0.4, 32, (256, 256, 256)); ``None`` for none.
        norm_cfg: normalisation of the set-abstraction MLPs.

    Input ``points (B, N, in_channels)``; output dict: ``fp_xyz``/``fp_features``/``fp_indices`` one-element lists
    of the token positions ``(B, M, 3)``, features ``(B, C, M)`` and their input point indices ``(B, M)``;
    ``sa_xyz``/``sa_features``/``sa_indices`` the input points and the tokens, in ``PointNet2SASSG``'s layout.
    """

    def __init__(self,
                 in_channels: int = 3,
                 num_points: int = 2048,
                 radius: float = 0.2,
                 num_samples: int = 64,
                 sa_channels: Sequence[int] = (64, 128, 256),
                 num_layers: int = 3,
                 num_heads: int = 4,
                 feedforward_channels: int = 128,
                 dropout: float = 0.1,
                 masking_radius: Optional[Sequence[float]] = None,
                 downsample_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN2d'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if in_channels < 3:
            raise ValueError(f'{name}: in_channels must be >= 3 (xyz first), got {in_channels}')
        if num_layers < 1 or not sa_channels:
            raise ValueError(f'{name}: need num_layers >= 1 and sa_channels, got {num_layers}, {sa_channels}')
        if masking_radius is not None and len(masking_radius) != num_layers:
            raise ValueError(f'{name}: masking_radius needs one radius per layer ({num_layers}), got '
                             f'{list(masking_radius)}')
        if downsample_cfg is not None and masking_radius is None:
            raise ValueError(f'{name}: downsample_cfg belongs to the masked encoder; set masking_radius too')
        self.in_channels = in_channels
        self.num_points = num_points
        self.embed_dims = sa_channels[-1]
        self.masking_radius = None if masking_radius is None else [float(r) for r in masking_radius]
        self.set_abstraction = PointSAModule(
            mlp_channels=[in_channels - 3] + list(sa_channels), num_point=num_points, radius=radius,
            num_sample=num_samples, norm_cfg=norm_cfg, use_xyz=True, pool_mod='max', normalize_xyz=True)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(self.embed_dims, num_heads, feedforward_channels, dropout,
                                       activation='relu', batch_first=True, norm_first=True)
            for _ in range(num_layers)
        ])
        self.num_heads = num_heads
        self.downsample = None
        if downsample_cfg is not None:
            cfg = dict(downsample_cfg)
            mlp = [self.embed_dims] + list(cfg.pop('mlp_channels'))
            if mlp[-1] != self.embed_dims:
                raise ValueError(f'{name}: downsample_cfg mlp_channels must end at the width {self.embed_dims}, '
                                 f'got {mlp[1:]}')
            self.downsample = PointSAModule(mlp_channels=mlp, norm_cfg=norm_cfg, use_xyz=True, pool_mod='max',
                                            normalize_xyz=True, **cfg)
        self._init_like_3detr()

    def _init_like_3detr(self) -> None:
        """3DETR's initialisation (mmcv's ConvModule would otherwise use kaiming fan-out)."""
        for layer in self.layers:
            for param in layer.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)
        for sa in (self.set_abstraction, self.downsample):
            if sa is None:
                continue
            for module in sa.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight)
                elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)

    def init_weights(self) -> None:
        super().init_weights()
        if not self.init_cfg:
            self._init_like_3detr()

    def _attention_mask(self, xyz: Tensor, radius: float) -> Optional[Tensor]:
        """``(B * heads, M, M)`` bool, True where a token may not attend (farther than ``radius``)."""
        if radius <= 0:
            return None
        with torch.no_grad():
            far = torch.cdist(xyz, xyz) >= radius
        batch, num = far.shape[:2]
        return far[:, None].expand(batch, self.num_heads, num, num).reshape(batch * self.num_heads, num, num)

    def forward(self, points: Tensor) -> dict:
        name = type(self).__name__
        if points.dim() != 3 or points.shape[-1] != self.in_channels:
            raise ValueError(f'{name}: points must be (B, N, in_channels={self.in_channels}), got '
                             f'{tuple(points.shape)}; check use_dim / shift_height of the pipeline')
        if points.shape[1] < self.num_points:
            raise ValueError(f'{name}: a scene has {points.shape[1]} points but the set abstraction samples '
                             f'{self.num_points} centres; sample at least that many (PointSample num_points)')
        xyz = points[..., :3].contiguous()
        point_features = points[..., 3:].transpose(1, 2).contiguous() if self.in_channels > 3 else None
        token_xyz, features, indices = self.set_abstraction(xyz, point_features)
        indices = indices.long()
        tokens = features.transpose(1, 2)                                  # (B, M, C)
        for i, layer in enumerate(self.layers):
            mask = None if self.masking_radius is None else self._attention_mask(token_xyz, self.masking_radius[i])
            tokens = layer(tokens, src_mask=mask)
            if i == 0 and self.downsample is not None:
                token_xyz, down_features, down_idx = self.downsample(token_xyz, tokens.transpose(1, 2).contiguous())
                tokens = down_features.transpose(1, 2)
                indices = torch.gather(indices, 1, down_idx.long())
        features = tokens.transpose(1, 2).contiguous()                     # (B, C, M)
        return sassg_outputs(xyz, point_features, token_xyz, features, indices)


@MODELS.register_module()
class ThreeDETRMaskedEncoder(ThreeDETREncoder):
    """3DETR-m's encoder (``--enc_type masked``): radius-masked attention and a down-sampling step.

    Layer radii 0.16, 0.64, 1.44 m (see ``masking_radius`` of :class:`ThreeDETREncoder`), and after the first
    layer a set abstraction to half the tokens (1024 centres, radius 0.4, 32 samples, MLP 256-256-256). Pair it
    with ``ThreeDETRHead(num_memory_proj_hidden=1)``, as 3DETR does. Other arguments as the plain encoder.
    """

    def __init__(self,
                 masking_radius: Sequence[float] = (0.16, 0.64, 1.44),
                 downsample_cfg: Optional[dict] = dict(
                     num_point=1024, radius=0.4, num_sample=32, mlp_channels=(256, 256, 256)),
                 **kwargs) -> None:
        super().__init__(masking_radius=masking_radius, downsample_cfg=downsample_cfg, **kwargs)
