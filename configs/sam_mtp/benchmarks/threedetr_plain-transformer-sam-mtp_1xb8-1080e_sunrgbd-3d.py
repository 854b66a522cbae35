# 3DETR + Ours on SUN RGB-D: paper Table 1 (63.5 AP25 / 39.5 AP50).
# threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py with SAM-MTP's three changes (stage-2 encoder, SAM-guided
# tokens from scene segments, tokens as queries). Needs data/sunrgbd/scene_segments/<idx>.bin
# (tools/make_scene_segments.py, docs/finetune.md).
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_sunrgbd-3d.py
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['./threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py', '../_base_/models/sam-mtp-point-backbone.py']

model = dict(backbone=dict(_base_.threedetr_sam_mtp_backbone, _delete_=True),
             bbox_head=dict(in_channels=_base_.sam_mtp_encoder['embed_dims'], query_source='tokens'))

train_pipeline = _base_.segments_train_pipeline  # <data_root>/scene_segments/<idx>.bin after the points
test_pipeline = _base_.segments_test_pipeline
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
