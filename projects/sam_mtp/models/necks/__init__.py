"""Projectors, the stage-2 masked token decoder, Point-MAE's point-group head and Bridge3D's global queries."""
from .global_queries import GlobalQueryBranch
from .masked_token_decoder import MaskedTokenDecoder
from .point_group_head import PointGroupReconstructionHead
from .token_projector import TokenProjector

__all__ = ['TokenProjector', 'MaskedTokenDecoder', 'PointGroupReconstructionHead', 'GlobalQueryBranch']
