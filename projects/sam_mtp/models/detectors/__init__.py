"""Downstream detectors."""
from .threedetr import ThreeDETR

__all__ = ['ThreeDETR']
