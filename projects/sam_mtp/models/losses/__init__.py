"""Pretraining losses."""
from .distill_losses import GroupBalancedDistillLoss, TokenFeatureMSELoss

__all__ = ['GroupBalancedDistillLoss', 'TokenFeatureMSELoss']
