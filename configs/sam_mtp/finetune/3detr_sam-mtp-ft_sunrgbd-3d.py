# 3DETR on SUN RGB-D (10 classes) with the SAM-MTP encoder: paper Table 1, row "3DETR + Ours" (63.5 AP25 /
# 39.5 AP50). Bridge3D's SUN RGB-D settings (spec §6.4): lr 7e-4, 128 queries, 12 heading bins, matcher giou 3 /
# cls 1 / centre 5 / objectness 5, loss giou 0 / no-object 0.1. Needs scene segments
# data/sunrgbd/scene_segments/<idx>.bin (tools/make_scene_segments.py, docs/finetune.md).
#   bash tools/dist_train.sh configs/sam_mtp/finetune/3detr_sam-mtp-ft_sunrgbd-3d.py 1
_base_ = [
    'mmdet3d::_base_/datasets/sunrgbd-3d.py',
    './_base_/threedetr_sam-mtp.py',
]

num_points = 20000  # mmdet3d's (and 3DETR's) SUN RGB-D input
base_lr = 7e-4

model = dict(
    bbox_head=dict(num_classes=10, num_queries=128, num_angle_bins=12, no_object_weight=0.1,
                   loss_giou=dict(type='GIoU3DLoss', loss_weight=0.0)),
    train_cfg=dict(assigner=dict(
        type='mmdet.HungarianAssigner',
        match_costs=[dict(type='mmdet.ClassificationCost', weight=1.0),
                     dict(type='BBox3DGIoUCost', weight=3.0),
                     dict(type='BBox3DCenterL1Cost', weight=5.0),
                     dict(type='BBox3DObjectnessCost', weight=5.0)])))

backend_args = None
load_segments = dict(type='LoadSceneSegments')  # <data_root>/scene_segments/<idx>.bin
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2],
         backend_args=backend_args),
    load_segments,
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, backend_args=backend_args),
    dict(type='RandomCuboidCrop', min_points=30000, crop_factor=(0.5, 1.0), min_aspect=0.8),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.523599, 0.523599], scale_ratio_range=[0.85, 1.15]),
    dict(type='PointSample', num_points=num_points),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2],
         backend_args=backend_args),
    load_segments,
    dict(type='PointSample', num_points=num_points),
    dict(type='Pack3DDetInputs', keys=['points']),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(times=1, dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True, begin=0, end=_base_.warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=_base_.max_epochs - _base_.warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=_base_.warmup_epochs, end=_base_.max_epochs, convert_to_iter_based=True),
]
