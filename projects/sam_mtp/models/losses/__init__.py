"""Pretraining losses."""
from .chamfer import ChamferL2Loss, chamfer_l2
from .distill_losses import GroupBalancedDistillLoss, TokenFeatureMSELoss

__all__ = ['ChamferL2Loss', 'chamfer_l2', 'GroupBalancedDistillLoss', 'TokenFeatureMSELoss']
