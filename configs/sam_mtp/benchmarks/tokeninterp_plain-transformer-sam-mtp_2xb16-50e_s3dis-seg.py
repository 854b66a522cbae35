# Semantic segmentation on S3DIS (13 classes, Area 5 held out) with the SAM-MTP encoder: paper Table 2, row
# "Plain Transformer + Ours" (71.8 mIoU / 78.2 mAcc), also the segmentation columns of Tables 3 and 4.
# mmdet3d's S3DIS protocol (PointNet++ config: 4096-point 1 m patches with normalised xyz, sliding-window test)
# with SamMtpPointBackbone and TokenInterpolationSegHead. Needs scene segments
# data/s3dis/scene_segments/<Area_i_room>.bin (tools/make_scene_segments.py, docs/finetune.md). Optimizer: INFERENCE.
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/tokeninterp_plain-transformer-sam-mtp_2xb16-50e_s3dis-seg.py 2
_base_ = [
    'mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg.py',
    '../_base_/datasets/s3dis-seg_tokeninterp.py',
    '../_base_/models/sam-mtp-point-backbone.py',
    '../_base_/schedules/tokeninterp_adamw.py',
]

num_classes = 13
max_epochs = 50  # mmdet3d's
model = dict(
    # xyz, rgb, segment id, then the normalised xyz that IndoorPatchPointSample / slide inference append
    backbone=dict(_base_.tokeninterp_sam_mtp_backbone, _delete_=True, in_channels=10),
    decode_head=dict(_base_.tokeninterp_head, _delete_=True, point_channels=6,  # colour + normalised xyz
                     num_classes=num_classes, ignore_index=num_classes,
                     loss_decode=_base_.model.decode_head.loss_decode))

# The segments column is loaded right after the points. S3DIS labels are already 0..12, so the stock test pipeline
# scores the right classes; the test pipeline's class mapping is kept for symmetry with ScanNet (identity here).
train_pipeline = _base_.segments_train_pipeline  # <data_root>/scene_segments/<room>.bin
test_pipeline = _base_.segments_test_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# ScanNet's optimizer (_base_/schedules/tokeninterp_adamw.py), 2 warm-up epochs, cosine over mmdet3d's 50 epochs.
optim_wrapper = dict(_base_.tokeninterp_optim_wrapper, _delete_=True)
param_scheduler = [dict(_base_.lr_warmup, end=2), dict(_base_.lr_cosine, begin=2, T_max=max_epochs - 2, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
