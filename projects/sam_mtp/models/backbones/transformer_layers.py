"""Building blocks of the plain point transformer, shared by the encoder and the stage-2 decoder.

Every block takes a key-padding mask (True = padded token); a padded token never changes a real token.

Details follow Bridge3D's ``Pretrain/models/transformer.py`` (a Point-MAE fork): attention without a qkv bias
(``Attention``/``Block``/``TransformerEncoder``/``TransformerDecoder`` default ``qkv_bias=False``, never
overridden by ``ReCon.py``), pre-norm blocks with MLP ratio 2, stochastic depth linearly spaced over the blocks,
and the two initialisations below. docs/pretraining.md lists the lines read.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn


def build_attention_mask(padding_mask: Tensor) -> Tensor:
    """(B, 1, M, M) bool mask for ``scaled_dot_product_attention``, True = may attend.

    Real keys are visible to every query; each padded query also sees itself, so a fully padded sample
    still has a finite softmax (its outputs are zeroed afterwards) instead of NaN that would leak into
    gradients.
    """
    num_tokens = padding_mask.shape[1]
    eye = torch.eye(num_tokens, dtype=torch.bool, device=padding_mask.device)
    return ((~padding_mask)[:, None, None, :] | eye[None, None]).contiguous()


def init_trunc_normal_(module: nn.Module, std: float = 0.02) -> None:
    """Bridge3D's encoder initialisation (``MaskTransformer._init_weights``, as Point-MAE): weights of every
    Linear and Conv1d ~ trunc-normal(0, ``std``), biases 0, LayerNorm weight 1 and bias 0; BatchNorm keeps
    PyTorch's defaults."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_xavier_uniform_(module: nn.Module) -> None:
    """Bridge3D's decoder initialisation (``TransformerDecoder._init_weights``, as Point-MAE): Linear weights
    xavier-uniform, biases 0, LayerNorm weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class TokenSelfAttention(nn.Module):
    """Multi-head self-attention over tokens with a boolean attention mask."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = False, attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, attn_mask: Optional[Tensor]) -> Tensor:
        batch, num_tokens, dims = x.shape
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, dims // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, num_tokens, dims)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + DropPath(Attn(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 2., drop_path: float = 0.,
                 drop: float = 0., attn_drop: float = 0., qkv_bias: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = TokenSelfAttention(embed_dims, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims)
        hidden = int(embed_dims * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dims, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, embed_dims),
            nn.Dropout(drop))

    def forward(self, x: Tensor, attn_mask: Optional[Tensor]) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), attn_mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TransformerStack(nn.Module):
    """L blocks with the centre positional embedding added before every block (Point-MAE), final LN.

    Args:
        pos_every_block (bool): add ``pos`` before every block (pretraining, Bridge3D) or once at the input
            (Bridge3D's 3DETR fine-tuning encoder).
        qkv_bias (bool): bias of the attention's qkv projection (Bridge3D: none).
    """

    def __init__(self, embed_dims: int, num_layers: int, num_heads: int, mlp_ratio: float = 2.,
                 drop_path_rate: float = 0., pos_every_block: bool = True, final_norm: bool = True,
                 qkv_bias: bool = False):
        super().__init__()
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist() if num_layers else []
        self.blocks = nn.ModuleList(
            [TransformerBlock(embed_dims, num_heads, mlp_ratio, drop_path=r, qkv_bias=qkv_bias) for r in rates])
        self.pos_every_block = pos_every_block
        self.norm = nn.LayerNorm(embed_dims) if final_norm else nn.Identity()

    def forward(self, x: Tensor, pos: Tensor, padding_mask: Tensor) -> Tensor:
        """x, pos: (B, M, C); padding_mask: (B, M). Padded outputs are zero."""
        attn_mask = build_attention_mask(padding_mask)
        real = (~padding_mask)[..., None].to(x.dtype)
        if not self.pos_every_block:
            x = x + pos
        for block in self.blocks:
            if self.pos_every_block:
                x = x + pos
            x = block(x, attn_mask) * real
        return self.norm(x) * real


class CenterPositionEmbedding(nn.Module):
    """MLP positional embedding of token centres, 3 -> hidden -> C with GELU (Point-MAE)."""

    def __init__(self, embed_dims: int, hidden_dims: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden_dims), nn.GELU(), nn.Linear(hidden_dims, embed_dims))

    def forward(self, centers: Tensor) -> Tensor:
        return self.mlp(centers)


class MiniPointNet(nn.Module):
    """Token embedding of Point-MAE: shared MLP on points, max-pool, concat the pooled feature to every
    point, second shared MLP, max-pool.

    Args:
        out_channels (int): token feature size C.
        channels (Sequence[int]): (c1, c2, c3): first MLP 3 -> c1 -> c2, second 2*c2 -> c3 -> C.
        norm_cfg (dict): norm of the hidden layers; batch statistics only ever see real tokens because the
            caller embeds the real tokens alone.
    """

    def __init__(self, out_channels: int, channels: Sequence[int] = (128, 256, 512),
                 norm_cfg: dict = dict(type='BN1d')):
        super().__init__()
        c1, c2, c3 = channels
        self.first = nn.Sequential(
            nn.Conv1d(3, c1, 1), build_norm_layer(norm_cfg, c1)[1], nn.ReLU(inplace=True), nn.Conv1d(c1, c2, 1))
        self.second = nn.Sequential(
            nn.Conv1d(2 * c2, c3, 1), build_norm_layer(norm_cfg, c3)[1], nn.ReLU(inplace=True),
            nn.Conv1d(c3, out_channels, 1))

    def forward(self, neighborhoods: Tensor) -> Tensor:
        """(T, S, 3) local coordinates -> (T, C)."""
        x = self.first(neighborhoods.transpose(1, 2))  # (T, c2, S)
        pooled = x.max(dim=2, keepdim=True).values
        x = self.second(torch.cat([pooled.expand_as(x), x], dim=1))
        return x.max(dim=2).values
