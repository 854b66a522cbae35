"""Downstream segmentors.

Semantic segmentation uses mmdet3d's ``EncoderDecoder3D`` unchanged (backbone dict ->
``TokenInterpolationSegHead``), so no segmentor subclass lives here.
"""
