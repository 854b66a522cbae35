# 3DETR (Misra et al., ICCV 2021): the model of facebookresearch/3detr's main.py defaults and scripts/scannet_ep1080.sh,
# which Bridge3D's 3DETR fine-tuning (Downstream/3detr) and SAM-MTP keep (Bridge3D's `Downstream/3detr`). ScanNet values; the SUN RGB-D
# configs override what differs. The SAM-MTP fine-tuning configs (configs/sam_mtp/benchmarks/threedetr_plain-*)
# replace only model.backbone (and the query source).
num_classes = 18

model = dict(
    type='ThreeDETR',
    data_preprocessor=dict(type='Det3DDataPreprocessor'),
    # 3DETR's encoder (--enc_type vanilla): set abstraction to 2048 tokens (radius 0.2, 64 samples, MLP
    # 64-128-256), then 3 pre-norm transformer layers (256-d, 4 heads, FFN 128, dropout 0.1, no positional
    # encoding). xyz only (no colour, no height).
    backbone=dict(type='ThreeDETREncoder', in_channels=3, num_points=2048, radius=0.2, num_samples=64,
                  sa_channels=(64, 128, 256), num_layers=3, num_heads=4, feedforward_channels=128, dropout=0.1),
    bbox_head=dict(
        type='ThreeDETRHead',
        num_classes=num_classes,
        in_channels=256,
        num_queries=256,
        query_source='fps',
        num_angle_bins=1,  # 3DETR's ScanNet: 1-bin heading heads and losses, heading always 0
        # 2 hidden layers in the encoder-to-decoder projection; the decoder: 8 layers, 256-d, 4 heads, FFN 256,
        # dropout 0.1; the prediction MLPs: 256-256, dropout 0.3.
        num_memory_proj_hidden=2, embed_dims=256, num_decoder_layers=8, num_heads=4, feedforward_channels=256,
        dropout=0.1, mlp_channels=(256, 256), mlp_dropout=0.3,
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
