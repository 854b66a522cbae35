"""Projectors, the stage-2 masked token decoder and Point-MAE's point-group head."""
from .masked_token_decoder import MaskedTokenDecoder
from .point_group_head import PointGroupReconstructionHead
from .token_projector import TokenProjector

__all__ = ['TokenProjector', 'MaskedTokenDecoder', 'PointGroupReconstructionHead']
