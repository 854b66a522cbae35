"""Projectors and the stage-2 masked token decoder."""
from .masked_token_decoder import MaskedTokenDecoder
from .token_projector import TokenProjector

__all__ = ['TokenProjector', 'MaskedTokenDecoder']
