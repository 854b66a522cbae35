"""CPU implementations of mmcv's 3D point ops, dispatched by device.

``from projects.sam_mtp.ops import furthest_point_sample, knn, ...`` gives
functions with mmcv's signatures that run mmcv's kernels on CUDA and our
implementations on the CPU: exact numba kd-tree kernels for FPS, kNN, ball
query and three-NN (:mod:`.cpu_kernels`), PyTorch for the rest, and the
pure-PyTorch ``*_torch`` functions wherever numba is missing. Importing
this package calls :func:`install_cpu_fallbacks`, so that mmcv's own
modules and mmdet3d's models (VoteNet, GroupFree3D, PointNet++) use the same
dispatchers and run on the CPU too.
"""
from .boxes import (
                    boxes_iou3d_torch,
                    boxes_overlap_bev_torch,
                    nms3d_normal_torch,
                    nms3d_torch,
                    points_in_boxes_all_torch,
                    points_in_boxes_part_torch,
)
from .cpu_kernels import pure_torch_point_ops
from .dispatch import (
                    DISPATCHERS,
                    MMCV_KERNEL_DEVICES,
                    ball_query,
                    boxes_iou3d,
                    boxes_overlap_bev,
                    cpu_fallbacks_installed,
                    furthest_point_sample,
                    furthest_point_sample_with_dist,
                    gather_points,
                    grouping_operation,
                    install_cpu_fallbacks,
                    is_dispatcher,
                    knn,
                    nms3d,
                    nms3d_normal,
                    original_op,
                    points_in_boxes_all,
                    points_in_boxes_part,
                    sigmoid_focal_loss,
                    three_interpolate,
                    three_nn,
                    uninstall_cpu_fallbacks,
)
from .grouping import gather_points_torch, grouping_operation_torch, three_interpolate_torch
from .losses import sigmoid_focal_loss_torch
from .neighbors import ball_query_fallback, ball_query_torch, knn_fallback, knn_torch, three_nn_fallback, three_nn_torch
from .sampling import furthest_point_sample_fallback, furthest_point_sample_torch, furthest_point_sample_with_dist_torch

install_cpu_fallbacks()

__all__ = [
    # dispatchers with mmcv's signatures
    'furthest_point_sample',
    'furthest_point_sample_with_dist',
    'gather_points',
    'grouping_operation',
    'ball_query',
    'knn',
    'three_nn',
    'three_interpolate',
    'points_in_boxes_part',
    'points_in_boxes_all',
    'boxes_overlap_bev',
    'boxes_iou3d',
    'nms3d',
    'nms3d_normal',
    'sigmoid_focal_loss',
    # pure-PyTorch implementations (any device)
    'furthest_point_sample_torch',
    'furthest_point_sample_with_dist_torch',
    'gather_points_torch',
    'grouping_operation_torch',
    'three_interpolate_torch',
    'ball_query_torch',
    'knn_torch',
    'three_nn_torch',
    'points_in_boxes_part_torch',
    'points_in_boxes_all_torch',
    'boxes_overlap_bev_torch',
    'boxes_iou3d_torch',
    'nms3d_torch',
    'nms3d_normal_torch',
    'sigmoid_focal_loss_torch',
    # CPU tensors -> numba kd-tree kernels, others -> *_torch
    'furthest_point_sample_fallback',
    'ball_query_fallback',
    'knn_fallback',
    'three_nn_fallback',
    'pure_torch_point_ops',
    # installation
    'install_cpu_fallbacks',
    'uninstall_cpu_fallbacks',
    'cpu_fallbacks_installed',
    'is_dispatcher',
    'original_op',
    'DISPATCHERS',
    'MMCV_KERNEL_DEVICES'
]
