# 3DETR on SUN RGB-D v1 (10 classes, oriented boxes): paper Table 1, row "3DETR" (58.0 AP25 / 30.3 AP50).
# facebookresearch/3detr's scripts/sunrgbd_ep1080.sh and datasets/sunrgbd.py: 128 queries, 12 heading bins,
# lr 7e-4, matcher giou 3 / cls 1 / centre 5 / objectness 5, loss giou 0 / no-object 0.1; 20k points, flip,
# +-30 deg rotation, scale 0.85-1.15, THEN random cuboid (crop 0.75-1, aspect 0.75), then sampling.
# The SAM-MTP rows (configs/sam_mtp/finetune/3detr_*_sunrgbd-3d.py) inherit this file and replace the backbone.
#   python tools/train.py configs/sam_mtp/downstream/threedetr_1xb8-1080e_sunrgbd-3d.py
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['mmdet3d::_base_/datasets/sunrgbd-3d.py', './_base_/threedetr-1080e.py']

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
        loss_giou=dict(type='GIoU3DLoss', loss_weight=0.0)),  # the GIoU only enters the matching cost
    train_cfg=dict(
        assigner=dict(
            type='mmdet.HungarianAssigner',
            match_costs=[
                dict(type='mmdet.ClassificationCost', weight=1.0),
                # 3DETR's enclosing volume: the world-axis-aligned box around both boxes.
                dict(type='BBox3DGIoUCost', weight=3.0, enclosing='aligned'),
                dict(type='BBox3DCenterL1Cost', weight=5.0),
                dict(type='BBox3DObjectnessCost', weight=5.0),
            ])))

backend_args = None
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2],
         backend_args=backend_args),
    dict(type='LoadAnnotations3D', backend_args=backend_args),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.523599, 0.523599], scale_ratio_range=[0.85, 1.15]),
    dict(type='RandomCuboidCrop', min_points=30000, crop_factor=(0.75, 1.0), min_aspect=0.75),
    dict(type='PointSample', num_points=num_points),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2],
         backend_args=backend_args),
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
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
