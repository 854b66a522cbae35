"""The plain point transformer of Bridge3D / SAM-MTP: mini-PointNet tokens, MLP centre embeddings, L blocks."""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from ..tokenizers.point_tokens import PointTokens
from .transformer_layers import CenterPositionEmbedding, MiniPointNet, TransformerStack, init_trunc_normal_


@dataclass
class VisibleTokens:
    """Encoder output for a subset of the tokens, packed to the left of a padded layout.

    Attributes:
        features: (B, V, C) encoder features of the selected tokens; zeros at padding.
        index: (B, V) long position of each packed token in the full (B, M) layout, -1 at padding.
        padding_mask: (B, V) bool, True at padding.
    """
    features: Tensor
    index: Tensor
    padding_mask: Tensor


def pack_selected(selected: Tensor) -> Tuple[Tensor, Tensor]:
    """Left-pack the True entries of a (B, M) mask, keeping their order.

    Returns ``index`` (B, V) long with -1 at padding and ``padding_mask`` (B, V), V = max count (>= 1).
    """
    counts = selected.sum(dim=1)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    order = torch.sort((~selected).to(torch.uint8), dim=1, stable=True).indices
    if order.shape[1] < width:  # M == 0
        order = order.new_zeros(selected.shape[0], width)
    order = order[:, :width]
    padding_mask = torch.arange(width, device=selected.device)[None] >= counts[:, None]
    return order.masked_fill(padding_mask, -1), padding_mask


def gather_tokens(values: Tensor, index: Tensor) -> Tensor:
    """values (B, M, ...) gathered at index (B, V) (-1 gives zeros) -> (B, V, ...)."""
    batch_idx = torch.arange(values.shape[0], device=values.device)[:, None]
    out = values[batch_idx, index.clamp(min=0)]
    keep = (index >= 0).reshape(index.shape + (1, ) * (values.dim() - 2)).to(values.dtype)
    return out * keep if values.is_floating_point() else out


@MODELS.register_module()
class PlainPointTransformer(BaseModule):
    """Token encoder: mini-PointNet embedding of every token, MLP embedding of its centre added before every
    block, ``num_layers`` pre-norm transformer blocks, final LayerNorm.

    ``forward(tokens)`` takes a :class:`PointTokens` and returns (B, M, C) features, zero at padding. The
    padding mask is honoured everywhere: padded tokens are never embedded (so they cannot enter the
    mini-PointNet's batch statistics), never attended to, and their outputs are zero.

    Args:
        embed_dims (int): C. Default 256.
        num_layers (int): transformer blocks. Default 3.
        num_heads (int): attention heads. Default 4.
        mlp_ratio (float): hidden size of the block MLP over C. Default 2.
        drop_path_rate (float): stochastic depth, linearly spaced 0 -> rate over the blocks. Default 0.1.
        pointnet_channels (Sequence[int]): hidden sizes of the mini-PointNet. Default (128, 256, 512).
        pos_hidden_dims (int): hidden size of the centre embedding MLP. Default 128.
        pos_every_block (bool): add the centre embedding before every block (True) or once. Default True.
        qkv_bias (bool): bias of the attention's qkv projection. Default False (Bridge3D).
        norm_cfg (dict): norm of the mini-PointNet. Default BN1d.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')`` to
            load the encoder of a stage-1/stage-2 checkpoint. Without it the weights are initialised as
            Bridge3D's encoder (:func:`.transformer_layers.init_trunc_normal_`) when the module is built.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_layers: int = 3,
                 num_heads: int = 4,
                 mlp_ratio: float = 2.,
                 drop_path_rate: float = 0.1,
                 pointnet_channels: Sequence[int] = (128, 256, 512),
                 pos_hidden_dims: int = 128,
                 pos_every_block: bool = True,
                 qkv_bias: bool = False,
                 norm_cfg: dict = dict(type='BN1d'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.token_embed = MiniPointNet(embed_dims, pointnet_channels, norm_cfg)
        self.pos_embed = CenterPositionEmbedding(embed_dims, pos_hidden_dims)
        self.encoder = TransformerStack(embed_dims, num_layers, num_heads, mlp_ratio, drop_path_rate,
                                        pos_every_block=pos_every_block, qkv_bias=qkv_bias)
        init_trunc_normal_(self)

    def embed_tokens(self, neighborhoods: Tensor, padding_mask: Tensor) -> Tensor:
        """(B, M, S, 3) -> (B, M, C) mini-PointNet embeddings; only real tokens are computed."""
        batch, num_tokens = padding_mask.shape
        real = ~padding_mask
        if not bool(real.any()):
            return neighborhoods.new_zeros(batch, num_tokens, self.embed_dims)
        embedded = self.token_embed(neighborhoods[real])
        # The embeddings' dtype, not the points': under autocast (--amp) they are float16 / bfloat16.
        out = embedded.new_zeros(batch, num_tokens, self.embed_dims)
        out[real] = embedded
        return out

    def encode(self, neighborhoods: Tensor, centers: Tensor, padding_mask: Tensor) -> Tensor:
        """(B, M, S, 3), (B, M, 3), (B, M) -> (B, M, C) token features, zero at padding."""
        if neighborhoods.dim() != 4 or neighborhoods.shape[-1] != 3:
            raise ValueError(f'{type(self).__name__}: neighborhoods must be (B, M, S, 3), '
                             f'got {tuple(neighborhoods.shape)}')
        if centers.shape != neighborhoods.shape[:2] + (3, ) or padding_mask.shape != centers.shape[:2]:
            raise ValueError(f'{type(self).__name__}: centers {tuple(centers.shape)} and padding_mask '
                             f'{tuple(padding_mask.shape)} do not match neighborhoods '
                             f'{tuple(neighborhoods.shape)}')
        x = self.embed_tokens(neighborhoods, padding_mask)
        return self.encoder(x, self.pos_embed(centers), padding_mask)

    def forward(self, tokens: PointTokens) -> Tensor:
        """Encode every token of a :class:`PointTokens` batch -> (B, M, C)."""
        return self.encode(tokens.neighborhoods, tokens.centers, tokens.padding_mask)

    def encode_visible(self, tokens: PointTokens, visible: Tensor) -> VisibleTokens:
        """Encode only the tokens where ``visible`` (B, M) is True (stage-2 student).

        Masked tokens are removed from the sequence, not just hidden, so the encoder costs O(visible).
        """
        if visible.shape != tokens.padding_mask.shape:
            raise ValueError(f'{type(self).__name__}: visible mask {tuple(visible.shape)} does not match the '
                             f'tokens {tuple(tokens.padding_mask.shape)}')
        index, padding_mask = pack_selected(visible & ~tokens.padding_mask)
        features = self.encode(
            gather_tokens(tokens.neighborhoods, index), gather_tokens(tokens.centers, index), padding_mask)
        return VisibleTokens(features=features, index=index, padding_mask=padding_mask)
