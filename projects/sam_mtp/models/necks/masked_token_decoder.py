"""Stage-2 decoder: fills masked token slots with a learned mask token and runs a few transformer blocks."""
from typing import Optional

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..backbones.transformer_layers import CenterPositionEmbedding, TransformerStack, init_xavier_uniform_


@MODELS.register_module()
class MaskedTokenDecoder(BaseModule):
    """MAE-style decoder over all real tokens of a sample.

    Visible slots take the (linearly mapped) encoder features, masked slots a learned mask token; the MLP
    embedding of every token centre is added before every block. Returns (B, M, embed_dims) features in the
    full token layout, zero at padding.

    Args:
        in_channels (int): encoder feature size.
        embed_dims (int): decoder width. Default 256.
        num_layers (int): blocks (Bridge3D: 2). Default 2.
        num_heads (int): Default 4.
        mlp_ratio (float): Default 2.
        drop_path_rate (float): stochastic depth, linearly spaced 0 -> rate over the blocks. Default 0.1
            (Bridge3D's ``MAE_decoder``: ``linspace(0, drop_path_rate=0.1, decoder_depth)``).
        pos_hidden_dims (int): hidden size of the centre embedding MLP. Default 128.
        qkv_bias (bool): bias of the attention's qkv projection. Default False (Bridge3D).

    Initialisation as Bridge3D's decoder: blocks xavier-uniform (:func:`init_xavier_uniform_`), mask token
    trunc-normal(0.02), centre embedding with PyTorch's defaults.
    """

    def __init__(self, in_channels: int, embed_dims: int = 256, num_layers: int = 2, num_heads: int = 4,
                 mlp_ratio: float = 2., drop_path_rate: float = 0.1, pos_hidden_dims: int = 128,
                 qkv_bias: bool = False, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.input_proj = nn.Linear(in_channels, embed_dims) if in_channels != embed_dims else nn.Identity()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.pos_embed = CenterPositionEmbedding(embed_dims, pos_hidden_dims)
        self.decoder = TransformerStack(embed_dims, num_layers, num_heads, mlp_ratio, drop_path_rate,
                                        qkv_bias=qkv_bias)
        init_xavier_uniform_(self.decoder)

    def forward(self, visible_features: Tensor, visible_index: Tensor, centers: Tensor,
                padding_mask: Tensor) -> Tensor:
        """
        Args:
            visible_features: (B, V, C_in) encoder output of the visible tokens (packed).
            visible_index: (B, V) long slot of each visible token in the full layout, -1 at padding.
            centers: (B, M, 3) centres of all tokens.
            padding_mask: (B, M) bool, True at padding.
        """
        batch, num_tokens = padding_mask.shape
        x = self.mask_token.expand(batch, num_tokens, -1).clone()
        keep = visible_index >= 0
        batch_idx = torch.arange(batch, device=x.device)[:, None].expand_as(visible_index)
        # Cast: under autocast (--amp) the projection is float16 / bfloat16 while the mask token is float32.
        x[batch_idx[keep], visible_index[keep]] = self.input_proj(visible_features[keep]).to(x.dtype)
        return self.decoder(x, self.pos_embed(centers), padding_mask)
