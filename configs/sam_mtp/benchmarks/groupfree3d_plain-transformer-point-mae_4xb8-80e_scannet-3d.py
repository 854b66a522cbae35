# GroupFree3D + Point-MAE on ScanNetV2: paper Table 1, row "GroupFree3D +Point-MAE" (numbers: docs/finetune.md,
# "Paper rows -> configs"). groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py (head, optimizer, schedule) with the encoder loaded
# from Point-MAE pretraining on scenes and its tokens instead of SAM-guided ones (no scene segments needed).
# Tokens: FPS/kNN (INFERENCE: no rival has SAM segments; Bridge3D's 3DETR fine-tuning tokens, 2048 x 128).
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-point-mae_4xb8-80e_scannet-3d.py 4
_base_ = ['./groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py']

# The backbone: groupfree3d_point_mae_backbone of _base_/models/sam-mtp-point-backbone.py.
model = dict(backbone=dict(_base_.groupfree3d_point_mae_backbone, _delete_=True, in_channels=3))  # xyz

train_pipeline = _base_.points_train_pipeline  # no scene segments: FPS/kNN tokens
test_pipeline = _base_.points_test_pipeline
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
