"""Pretraining algorithms: stage-1 distillation, stage-2 masked token prediction, the joint ablation, and the
Point-MAE and Bridge3D baselines."""
from .bridge3d import Bridge3D, bridge3d_token_mask, semantic_guided_keep
from .distiller import SamMtpDistiller
from .joint_pretrainer import SamMtpJointPretrainer
from .masked_token_predictor import MaskedTokenPredictionMixin, SamMtpMaskedTokenPredictor, load_frozen_state
from .point_mae import PointMAE
from .token_utils import gather_region_targets, masked_mean, random_token_mask

__all__ = [
    'SamMtpDistiller', 'SamMtpMaskedTokenPredictor', 'SamMtpJointPretrainer', 'PointMAE', 'Bridge3D',
    'MaskedTokenPredictionMixin', 'load_frozen_state', 'random_token_mask', 'masked_mean', 'gather_region_targets',
    'bridge3d_token_mask', 'semantic_guided_keep'
]
