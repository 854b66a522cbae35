"""Bridge3D's (ReCon's) global tokens: learned queries that read the patch tokens of every encoder block."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..backbones.transformer_layers import init_trunc_normal_


class QueryCrossAttention(nn.Module):
    """Multi-head attention of a few queries over the patch tokens (ReCon's ``CrossAttention``: ``q`` and
    ``kv`` projections without bias, output projection with bias)."""

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = False):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by num_heads ({num_heads})')
        self.num_heads = num_heads
        self.q = nn.Linear(embed_dims, embed_dims, bias=qkv_bias)
        self.kv = nn.Linear(embed_dims, 2 * embed_dims, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, queries: Tensor, keys: Tensor, attn_mask: Tensor) -> Tensor:
        """queries (B, Q, C), keys (B, V, C), attn_mask (B, 1, Q, V) bool (True = may attend)."""
        batch, num_queries, dims = queries.shape
        head_dims = dims // self.num_heads
        q = self.q(queries).reshape(batch, num_queries, self.num_heads, head_dims).transpose(1, 2)
        k, v = self.kv(keys).reshape(batch, keys.shape[1], 2, self.num_heads, head_dims).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(batch, num_queries, dims))


class GlobalQueryBlock(nn.Module):
    """The query half of ReCon's ``Block(with_contrast=True)``.

    ``q = LN1(q); q = q + DropPath(CrossAttn(q, keys)); q = LN2(q); q = q + DropPath(MLP(q))``: the residual is
    taken after the norm, as in the reference (its patch half does the same; ours is pre-norm, see
    docs/pretraining.md, "Differences from Bridge3D").
    """

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float = 2., drop_path: float = 0.,
                 qkv_bias: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = QueryCrossAttention(embed_dims, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(embed_dims)
        hidden = int(embed_dims * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(embed_dims, hidden), nn.GELU(), nn.Linear(hidden, embed_dims))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, queries: Tensor, keys: Tensor, attn_mask: Tensor) -> Tensor:
        queries = self.norm1(queries)
        queries = queries + self.drop_path(self.attn(queries, keys, attn_mask))
        queries = self.norm2(queries)
        return queries + self.drop_path(self.mlp(queries))


@MODELS.register_module()
class GlobalQueryBranch(BaseModule):
    """Bridge3D's cls / img / text tokens (``MaskTransformer`` of ``Pretrain/models/ReCon.py``).

    Each query has a learned token and a learned position (added before every block, as the reference adds
    ``pos`` to every token). In block ``l`` the queries cross-attend to ``keys[l]``, the patch tokens of encoder
    block ``l`` after its first LayerNorm, **detached**: the global losses never reach the patch stream through
    the attention (the reference's ``attn_contrast(cls, vis_x.detach())``). The queries never attend to each
    other. The output goes through ``final_norm``, the encoder's last LayerNorm, shared with the patch tokens as
    in the reference (``self.norm`` over all tokens), so that LayerNorm is trained by the global losses too.

    Kept outside :class:`PlainPointTransformer` so that the encoder keys stay those every fine-tuning config
    loads; this module plus the encoder have exactly the reference encoder's parameters.

    Args:
        embed_dims (int): C. Default 256.
        num_layers (int): blocks, one per encoder block. Default 3.
        num_heads (int): Default 4.
        mlp_ratio (float): Default 2.
        drop_path_rate (float): linearly spaced 0 -> rate over the blocks, as the encoder's. Default 0.1.
        query_names (Sequence[str]): one learned query per name. Default ('cls', 'img', 'text') (the reference;
            its ``cls`` query feeds only the self-contrastive loss, which its config switches off).
        qkv_bias (bool): Default False (the reference).
    """

    def __init__(self, embed_dims: int = 256, num_layers: int = 3, num_heads: int = 4, mlp_ratio: float = 2.,
                 drop_path_rate: float = 0.1, query_names: Sequence[str] = ('cls', 'img', 'text'),
                 qkv_bias: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if len(set(query_names)) != len(query_names) or not query_names:
            raise ValueError(f'{type(self).__name__}: query_names must be distinct and non-empty, got {query_names}')
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        self.query_names = tuple(query_names)
        self.query_tokens = nn.Parameter(torch.zeros(1, len(query_names), embed_dims))
        self.query_pos = nn.Parameter(torch.zeros(1, len(query_names), embed_dims))
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist() if num_layers else []
        self.blocks = nn.ModuleList(
            [GlobalQueryBlock(embed_dims, num_heads, mlp_ratio, rate, qkv_bias) for rate in rates])
        # The reference's MaskTransformer init: Linear trunc-normal(0.02), LayerNorm 1 / 0, tokens and positions
        # trunc-normal(0.02).
        init_trunc_normal_(self)
        nn.init.trunc_normal_(self.query_tokens, std=0.02)
        nn.init.trunc_normal_(self.query_pos, std=0.02)

    def index(self, name: str) -> int:
        """Position of query ``name`` in the output."""
        if name not in self.query_names:
            raise KeyError(f'{type(self).__name__}: no query named {name!r}; queries are {self.query_names}')
        return self.query_names.index(name)

    def forward(self, keys: Sequence[Tensor], key_padding_mask: Tensor, final_norm: nn.Module) -> Tensor:
        """
        Args:
            keys: one (B, V, C) tensor per block, the patch tokens the queries read in that block.
            key_padding_mask: (B, V) bool, True at padded patch slots.
            final_norm: the encoder's final LayerNorm.

        Returns:
            (B, Q, C) query features.
        """
        if len(keys) != len(self.blocks):
            raise ValueError(f'{type(self).__name__}: got the patch tokens of {len(keys)} encoder blocks for '
                             f'{len(self.blocks)} query blocks (num_layers must equal the encoder depth)')
        real = ~key_padding_mask
        # A sample without any real patch token attends to its (zero-weight) first slot, not to nothing (NaN).
        empty = ~real.any(dim=1, keepdim=True)
        first = torch.zeros_like(real)
        first[:, :1] = True
        attn_mask = (real | (empty & first))[:, None, None, :]
        batch = key_padding_mask.shape[0]
        queries = self.query_tokens.expand(batch, -1, -1)
        pos = self.query_pos.expand(batch, -1, -1)
        for block, block_keys in zip(self.blocks, keys):
            queries = block(queries + pos, block_keys.detach(), attn_mask)
        return final_norm(queries)
