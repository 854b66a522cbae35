# 3DETR on SUN RGB-D v1 (10 classes, oriented boxes): paper Table 1, row "3DETR" (58.0 AP25 / 30.3 AP50).
# facebookresearch/3detr's scripts/sunrgbd_ep1080.sh and datasets/sunrgbd.py: 128 queries, 12 heading bins,
# lr 7e-4, matcher giou 3 / cls 1 / centre 5 / objectness 5, loss giou 0 / no-object 0.1; 20k points, flip,
# +-30 deg rotation, scale 0.85-1.15, THEN random cuboid (crop 0.75-1, aspect 0.75), then sampling
# (_base_/datasets/sunrgbd-3d_threedetr.py). The SAM-MTP rows
# (configs/sam_mtp/benchmarks/threedetr_plain-transformer*_sunrgbd-3d.py) inherit this file and replace the backbone.
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = [
    '../_base_/datasets/sunrgbd-3d_threedetr.py',
    '../_base_/models/threedetr.py',
    '../_base_/schedules/threedetr-1080e.py',
    '../_base_/threedetr_runtime.py',
    '../_base_/schedules/warmup-cosine.py',
]

base_lr = 7e-4

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

optim_wrapper = dict(optimizer=dict(lr=base_lr))
# 9 linear warm-up epochs from 1e-6, then cosine to 1e-6, as on ScanNet.
param_scheduler = [
    dict(_base_.lr_warmup, start_factor=1e-6 / base_lr, end=_base_.warmup_epochs),
    dict(_base_.lr_cosine, begin=_base_.warmup_epochs, T_max=_base_.max_epochs - _base_.warmup_epochs,
         end=_base_.max_epochs),
]
