"""Point-token encoders, and 3DETR's encoder for the downstream baselines."""
from .downstream_backbone import SamMtpPointBackbone
from .plain_point_transformer import PlainPointTransformer, VisibleTokens, gather_tokens, pack_selected
from .threedetr_encoder import ThreeDETREncoder, ThreeDETRMaskedEncoder
from .transformer_layers import (
                                 CenterPositionEmbedding,
                                 MiniPointNet,
                                 TransformerBlock,
                                 TransformerStack,
                                 build_attention_mask,
)

__all__ = [
    'PlainPointTransformer', 'VisibleTokens', 'pack_selected', 'gather_tokens', 'TransformerBlock',
    'TransformerStack', 'CenterPositionEmbedding', 'MiniPointNet', 'build_attention_mask', 'SamMtpPointBackbone',
    'ThreeDETREncoder', 'ThreeDETRMaskedEncoder'
]
