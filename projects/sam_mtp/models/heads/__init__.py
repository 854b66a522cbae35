"""Downstream heads: 3DETR detection head, 3D match costs / GIoU loss, token-interpolation segmentation head,
GroupFree3D head with oriented-box targets fixed."""
from .box3d_giou import box3d_bev_corners, giou_3d, iou_3d
from .groupfree3d_head import RotatedBoxGroupFree3DHead
from .match_costs_3d import BBox3DCenterL1Cost, BBox3DGIoUCost, BBox3DObjectnessCost, GIoU3DLoss
from .threedetr_head import ThreeDETRHead
from .threedetr_transformer import (
                                    FourierPositionEncoding,
                                    PointwiseMLP,
                                    ThreeDETRDecoder,
                                    ThreeDETRDecoderLayer,
                                    masked_furthest_point_sample,
)
from .token_interp_seg_head import TokenInterpolationSegHead, interpolate_tokens_to_points

__all__ = [
    'box3d_bev_corners', 'giou_3d', 'iou_3d', 'BBox3DCenterL1Cost', 'BBox3DGIoUCost', 'BBox3DObjectnessCost',
    'GIoU3DLoss', 'ThreeDETRHead', 'FourierPositionEncoding', 'ThreeDETRDecoder', 'ThreeDETRDecoderLayer',
    'PointwiseMLP', 'masked_furthest_point_sample', 'TokenInterpolationSegHead', 'interpolate_tokens_to_points',
    'RotatedBoxGroupFree3DHead'
]
