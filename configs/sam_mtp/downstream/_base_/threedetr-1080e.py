# 3DETR (Misra et al., ICCV 2021): model, optimizer and schedule of facebookresearch/3detr's main.py defaults and
# scripts/scannet_ep1080.sh, which Bridge3D's 3DETR fine-tuning (Downstream/3detr) and SAM-MTP keep (spec §6.4).
# ScanNet values; the SUN RGB-D config overrides what differs. The SAM-MTP fine-tuning configs
# (configs/sam_mtp/finetune/3detr_*) inherit this file and replace only model.backbone (and the query source).
_base_ = ['mmdet3d::_base_/default_runtime.py']

custom_imports = dict(imports=['projects.sam_mtp'], allow_failed_imports=False)

num_classes = 18
max_epochs = 1080
warmup_epochs = 9
base_lr = 5e-4

model = dict(
    type='ThreeDETR',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    # 3DETR's encoder (--enc_type vanilla): set abstraction to 2048 tokens (radius 0.2, 64 samples, MLP
    # 64-128-256), then 3 pre-norm transformer layers (256-d, 4 heads, FFN 128, dropout 0.1, no positional
    # encoding). xyz only (no colour, no height).
    backbone=dict(
        type='ThreeDETREncoder',
        in_channels=3,
        num_points=2048,
        radius=0.2,
        num_samples=64,
        sa_channels=(64, 128, 256),
        num_layers=3,
        num_heads=4,
        feedforward_channels=128,
        dropout=0.1),
    bbox_head=dict(
        type='ThreeDETRHead',
        num_classes=num_classes,
        in_channels=256,
        num_queries=256,
        query_source='fps',
        num_angle_bins=1,  # 3DETR's ScanNet: 1-bin heading heads and losses, heading always 0
        num_memory_proj_hidden=2,
        embed_dims=256,
        num_decoder_layers=8,
        num_heads=4,
        feedforward_channels=256,
        dropout=0.1,
        mlp_channels=(256, 256),
        mlp_dropout=0.3,
        no_object_weight=0.25,
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_center=dict(type='mmdet.L1Loss', loss_weight=5.0),
        loss_size=dict(type='mmdet.L1Loss', loss_weight=1.0),
        loss_giou=dict(type='GIoU3DLoss', loss_weight=1.0),
        loss_angle_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.1),
        loss_angle_reg=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=0.5)),
    train_cfg=dict(
        assigner=dict(
            type='mmdet.HungarianAssigner',
            match_costs=[
                dict(type='mmdet.ClassificationCost', weight=1.0),
                dict(type='BBox3DGIoUCost', weight=2.0),
                # 3DETR's ScanNet centre and objectness costs are 0: left out.
            ])),
    test_cfg=dict(empty_box_min_points=5, use_nms=True, nms_thr=0.25, objectness_thr=0.05,
                  per_class_proposal=True))

# AdamW, wd 0.1 on every parameter: 3DETR's --filter_biases_wd is off in its scripts, and Bridge3D's own 3DETR
# fine-tuning (Downstream/3detr/optimizer.py, main.py, scannet_ep1080.sh, sunrgbd_ep1080.sh) keeps that
# default and never passes the flag, so norms, biases and 1-D parameters are decayed too.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.1),
    clip_grad=dict(max_norm=0.1, norm_type=2))
# 9 linear warm-up epochs from 1e-6, then cosine to 1e-6, per iteration (docs/downstream.md: the cosine
# phase here starts at the end of warm-up).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
auto_scale_lr = dict(enable=False, base_batch_size=8)  # 3DETR and Bridge3D: 8 scenes on one GPU

# 3DETR evaluates every 10 epochs; Bridge3D keeps the best-AP25 and the best-AP50 checkpoints separately.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2, save_last=True,
                    save_best=['mAP_0.25', 'mAP_0.50'], rule='greater'))

# 3DETR's data (VoteNet's ScanNet and SUN RGB-D exports) holds 50k points per scene, and RandomCuboidCrop's
# min_points=30000 and the 40k/20k point samples assume it. mmdet3d's SUN RGB-D converter samples 50k too, but its
# ScanNet export keeps every mesh vertex unless run with --max_num_point 50000 (docs/finetune.md): warn, once per
# dataset, when scenes hold more than twice the recipe's count.
points_per_scene = 50000
custom_hooks = [
    dict(type='ScenePointCountHook', expected_points=points_per_scene, max_ratio=2.0,
         hint="3DETR's ScanNet data is VoteNet's 50k-point export: export with mmdet3d's "
              'data/scannet/batch_load_scannet_data.py --max_num_point 50000 (docs/finetune.md, "Data")'),
]
