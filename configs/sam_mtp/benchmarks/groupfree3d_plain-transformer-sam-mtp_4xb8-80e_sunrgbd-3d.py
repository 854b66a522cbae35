# GroupFree3D + Ours on SUN RGB-D (10 classes): paper Table 1 (68.9 AP25 / 52.1 AP50). The baseline
# groupfree3d_pointnet2-ssg_4xb8-80e_sunrgbd-3d.py (RotatedBoxGroupFree3DHead, settings there) with only the
# backbone replaced: SAM-guided tokens from scene segments, the pretrained plain transformer, a Linear to the head's
# 288 channels. Needs scene segments data/sunrgbd/scene_segments/<idx>.bin (tools/make_scene_segments.py,
# docs/finetune.md).
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_sunrgbd-3d.py 4
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = [
    './groupfree3d_pointnet2-ssg_4xb8-80e_sunrgbd-3d.py',
    '../_base_/datasets/sunrgbd-3d_groupfree3d.py',
    '../_base_/models/sam-mtp-point-backbone.py',
]

# The backbone: groupfree3d_sam_mtp_backbone of _base_/models/sam-mtp-point-backbone.py on xyz + height
# (shift_height=True, an unused point feature) + segment id.
model = dict(backbone=dict(_base_.groupfree3d_sam_mtp_backbone, _delete_=True, in_channels=5, segment_channel=4))

train_pipeline = _base_.segments_train_pipeline  # <data_root>/scene_segments/<idx>.bin after the points
test_pipeline = _base_.segments_test_pipeline
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# The pretrained transformer trains at a tenth of the base lr, like the head's decoder (as on ScanNet); the
# scratch twin uses the same optimizer so only the initialisation differs.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.encoder': dict(lr_mult=0.1, decay_mult=1.0)}))
