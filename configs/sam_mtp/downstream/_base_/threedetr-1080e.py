# 3DETR (Misra et al. 2021) as fine-tuned by Bridge3D and SAM-MTP (spec §6.4): ThreeDETR with mmdet3d's
# PointNet++ (SSG) encoder, the 8-layer set-prediction decoder and the 1080-epoch AdamW schedule.
# ScanNet values; dataset configs override what differs.
num_classes = 18
max_epochs = 1080
warmup_epochs = 9
base_lr = 5e-4

model = dict(
    type='ThreeDETR',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    # fp_xyz[-1]: 1024 tokens with 256 channels. 3DETR uses xyz only (no colour, no height).
    backbone=dict(
        type='PointNet2SASSG',
        in_channels=3,
        num_points=(2048, 1024, 512, 256),
        radius=(0.2, 0.4, 0.8, 1.2),
        num_samples=(64, 32, 16, 16),
        sa_channels=((64, 64, 128), (128, 128, 256), (128, 128, 256), (128, 128, 256)),
        fp_channels=((256, 256), (256, 256)),
        norm_cfg=dict(type='BN2d'),
        sa_cfg=dict(type='PointSAModule', pool_mod='max', use_xyz=True, normalize_xyz=True)),
    bbox_head=dict(
        type='ThreeDETRHead',
        num_classes=num_classes,
        in_channels=256,
        num_queries=256,
        query_source='fps',
        num_angle_bins=0,
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
        loss_giou=dict(type='GIoU3DLoss', loss_weight=1.0)),
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


auto_scale_lr = dict(enable=False, base_batch_size=8)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.1),
    clip_grad=dict(max_norm=0.1, norm_type=2))
param_scheduler = [
    # 9 warm-up epochs from 1e-6, then cosine down to 1e-6.
    dict(type='LinearLR', start_factor=1e-6 / base_lr, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
