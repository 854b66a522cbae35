# 3DETR + Ours on SUN RGB-D: paper Table 1 (63.5 AP25 / 39.5 AP50). 3detr_plain-transformer_sunrgbd-3d.py with
# SAM-MTP's three changes (stage-2 encoder, SAM-guided tokens from scene segments, tokens as queries). Needs
# data/sunrgbd/scene_segments/<idx>.bin (tools/make_scene_segments.py, docs/finetune.md).
#   python tools/train.py configs/sam_mtp/finetune/3detr_sam-mtp-ft_sunrgbd-3d.py
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['./3detr_plain-transformer_sunrgbd-3d.py']

model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.det_sam_tokenizer),
        in_channels=4,  # xyz + segment id
        segment_channel=3,
        init_cfg=dict(type='Pretrained', checkpoint=_base_.pretrained_checkpoint, prefix='backbone.')),
    bbox_head=dict(query_source='tokens'))

load_segments = dict(type='LoadSceneSegments')  # <data_root>/scene_segments/<idx>.bin
train_pipeline = _base_.train_pipeline[:1] + [load_segments] + _base_.train_pipeline[1:]
test_pipeline = _base_.test_pipeline[:1] + [load_segments] + _base_.test_pipeline[1:]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
