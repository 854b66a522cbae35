"""Downstream heads: 3DETR detection head, 3D match costs / GIoU loss, token-interpolation segmentation head."""
from .box3d_giou import box3d_bev_corners, giou_3d, iou_3d
from .match_costs_3d import BBox3DCenterL1Cost, BBox3DGIoUCost, BBox3DObjectnessCost, GIoU3DLoss
from .threedetr_head import ThreeDETRHead
from .threedetr_transformer import (FourierPositionEncoding, ThreeDETRDecoder, ThreeDETRDecoderLayer,
                                    masked_furthest_point_sample)
from .token_interp_seg_head import TokenInterpolationSegHead, interpolate_tokens_to_points

__all__ = [
    'box3d_bev_corners', 'giou_3d', 'iou_3d', 'BBox3DCenterL1Cost', 'BBox3DGIoUCost', 'BBox3DObjectnessCost',
    'GIoU3DLoss', 'ThreeDETRHead', 'FourierPositionEncoding', 'ThreeDETRDecoder', 'ThreeDETRDecoderLayer',
    'masked_furthest_point_sample', 'TokenInterpolationSegHead', 'interpolate_tokens_to_points'
]
