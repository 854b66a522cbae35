"""Projectors, the stage-2 masked token decoder and Bridge3D's global queries."""
from .global_queries import GlobalQueryBranch
from .masked_token_decoder import MaskedTokenDecoder
from .token_projector import TokenProjector

__all__ = ['TokenProjector', 'MaskedTokenDecoder', 'GlobalQueryBranch']
