# 3DETR on SUN RGB-D v1 (10 classes, oriented boxes: 12 heading bins). Settings: 3DETR's
# scripts/sunrgbd_ep1080.sh, main.py defaults and its SUN RGB-D augmentation (spec §6.4). One deliberate change:
# the GIoU matching cost uses the convex-hull enclosing volume (docs/downstream.md).
_base_ = [
    'mmdet3d::_base_/datasets/sunrgbd-3d.py', 'mmdet3d::_base_/default_runtime.py',
    './_base_/threedetr_pointnet2-1080e.py'
]

custom_imports = dict(
    imports=['projects.sam_mtp', 'projects.sam_mtp.models.heads', 'projects.sam_mtp.models.detectors',
             'projects.sam_mtp.datasets.random_cuboid'],
    allow_failed_imports=False)

num_points = 20000
base_lr = 7e-4
max_epochs = 1080
warmup_epochs = 9

model = dict(
    bbox_head=dict(
        num_classes=10,
        num_queries=128,
        num_angle_bins=12,
        no_object_weight=0.1,
        loss_giou=dict(type='GIoU3DLoss', loss_weight=0.0),
        loss_angle_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.1),
        loss_angle_reg=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=0.5)),
    train_cfg=dict(
        assigner=dict(
            type='mmdet.HungarianAssigner',
            match_costs=[
                dict(type='mmdet.ClassificationCost', weight=1.0),
                dict(type='BBox3DGIoUCost', weight=3.0, enclosing='hull'),
                dict(type='BBox3DCenterL1Cost', weight=5.0),
                dict(type='BBox3DObjectnessCost', weight=5.0),
            ])))

train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2]),
    dict(type='LoadAnnotations3D'),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.523599, 0.523599], scale_ratio_range=[0.85, 1.15]),
    dict(type='RandomCuboidCrop', min_points=30000, crop_factor=(0.75, 1.0), min_aspect=0.75),
    dict(type='PointSample', num_points=num_points),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2]),
    dict(type='PointSample', num_points=num_points),
    dict(type='Pack3DDetInputs', keys=['points']),
]

train_dataloader = dict(
    batch_size=8,
    dataset=dict(times=1, dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2,
                    save_best=['mAP_0.25', 'mAP_0.50'], rule='greater'))
