# GroupFree3D (6 decoder layers, 256 proposals) on SUN RGB-D v1 (10 classes, oriented boxes) with mmdet3d's
# PointNet++ backbone: paper Table 1, row "GroupFree3D" on SUN RGB-D (63.0 AP25 / 45.2 AP50). mmdet3d 1.4 ships no
# SUN RGB-D GroupFree3D config; this one composes mmdet3d's SUN RGB-D data (20k points with a height column),
# GroupFree3D model and runtime bases, with the heading bins and mean sizes of mmdet3d's SUN RGB-D VoteNet and the
# losses/schedule of its ScanNet GroupFree3D (L6) config (INFERENCE: GroupFree3D's own SUN RGB-D recipe differs).
# The head is RotatedBoxGroupFree3DHead: mmdet3d's GroupFree3DHead crashes on oriented boxes in its first training
# step (projects/sam_mtp/models/heads/groupfree3d_head.py). SAM-MTP's rows inherit this file
# (configs/sam_mtp/benchmarks/groupfree3d_plain-transformer*_sunrgbd-3d.py) and replace only the backbone.
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/groupfree3d_pointnet2-ssg_4xb8-80e_sunrgbd-3d.py 4
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = [
    'mmdet3d::_base_/datasets/sunrgbd-3d.py',
    'mmdet3d::_base_/models/groupfree3d.py',
    'mmdet3d::_base_/default_runtime.py',
]

custom_imports = dict(imports=['projects.sam_mtp'], allow_failed_imports=False)

model = dict(
    backbone=dict(in_channels=4),  # xyz + height (the SUN RGB-D pipeline's shift_height=True)
    bbox_head=dict(
        type='RotatedBoxGroupFree3DHead',
        num_classes=10,
        size_cls_agnostic=False,
        bbox_coder=dict(
            type='GroupFree3DBBoxCoder',
            num_sizes=10,
            num_dir_bins=12,
            with_rot=True,
            size_cls_agnostic=False,
            # per-class mean box sizes of SUN RGB-D (mmdet3d's votenet_8xb16_sunrgbd-3d.py)
            mean_sizes=[[2.114256, 1.620300, 0.927272], [0.791118, 1.279516, 0.718182],
                        [0.923508, 1.867419, 0.845495], [0.591958, 0.552978, 0.827272],
                        [0.699104, 0.454178, 0.75625], [0.69519, 1.346299, 0.736364],
                        [0.528526, 1.002642, 1.172878], [0.500618, 0.632163, 0.683424],
                        [0.404671, 1.071108, 1.688889], [0.76584, 1.398258, 0.472728]]),
        center_loss=dict(type='mmdet.SmoothL1Loss', beta=0.04, reduction='sum', loss_weight=10.0),
        size_res_loss=dict(type='mmdet.SmoothL1Loss', beta=1.0 / 9.0, reduction='sum', loss_weight=10.0 / 9.0)),
    test_cfg=dict(sample_mode='kps', nms_thr=0.25, score_thr=0.0, per_class_proposal=True,
                  prediction_stages='last_three'))

train_dataloader = dict(batch_size=8)

# Schedule of mmdet3d's ScanNet GroupFree3D (4 GPUs x 8 scenes, 80 epochs of the 5x repeated set); the head's
# transformer decoder trains at a tenth of the base lr.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.006, weight_decay=0.0005),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={
        'bbox_head.decoder_layers': dict(lr_mult=0.1, decay_mult=1.0),
        'bbox_head.decoder_self_posembeds': dict(lr_mult=0.1, decay_mult=1.0),
        'bbox_head.decoder_cross_posembeds': dict(lr_mult=0.1, decay_mult=1.0),
        'bbox_head.decoder_query_proj': dict(lr_mult=0.1, decay_mult=1.0),
        'bbox_head.decoder_key_proj': dict(lr_mult=0.1, decay_mult=1.0),
    }))
param_scheduler = [dict(type='MultiStepLR', begin=0, end=80, by_epoch=True, milestones=[56, 68], gamma=0.1)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=80, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=32)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=10))
randomness = dict(seed=4)
