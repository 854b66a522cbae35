"""Tokenizers, backbone, losses, pretraining algorithms and downstream heads.

Importing this package registers every model part into ``mmdet3d.registry.MODELS``.
"""
# Pretraining parts, then the downstream heads/detectors/segmentors (other owners), all for registration.
from . import algorithms, backbones, detectors, heads, losses, necks, segmentors, tokenizers  # noqa: F401  # noqa: F401
from .algorithms import SamMtpDistiller, SamMtpJointPretrainer, SamMtpMaskedTokenPredictor
from .backbones import PlainPointTransformer
from .losses import GroupBalancedDistillLoss, TokenFeatureMSELoss
from .necks import MaskedTokenDecoder, TokenProjector
from .tokenizers import FPSKNNTokenizer, PointTokens, SAMGuidedTokenizer

__all__ = [
    'PointTokens', 'SAMGuidedTokenizer', 'FPSKNNTokenizer', 'PlainPointTransformer', 'TokenProjector',
    'MaskedTokenDecoder', 'GroupBalancedDistillLoss', 'TokenFeatureMSELoss', 'SamMtpDistiller',
    'SamMtpMaskedTokenPredictor', 'SamMtpJointPretrainer'
]
