# 3DETR on ScanNetV2 with Bridge3D's FPS/kNN tokens (2048 x 128) instead of SAM-guided tokens and FPS-sampled
# queries: the fine-tuning side of paper Table 3's rows without "SAM-Guided Tokenize" (use an encoder
# pretrained with kNN tokens, configs/sam_mtp/ablations/t3-r4_stage2_knn-tokens.py or t3-r3_...). With
# --cfg-options model.backbone.init_cfg=None it is the "3DETR + Plain Transformer" row of Table 1.
_base_ = ['./3detr_sam-mtp-ft_scannet-3d.py']

model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.det_knn_tokenizer),
        in_channels=3,
        segment_channel=None,
        # Table 3 row 4; rows 2/3 fine-tune the t3-r2 stage-1 / t3-r3 stage-2 checkpoints instead.
        init_cfg=dict(checkpoint='work_dirs/t3-r4_stage2_knn-tokens/epoch_120.pth')),
    bbox_head=dict(query_source='fps'))

train_pipeline = [t for t in _base_.train_pipeline if t['type'] != 'LoadSceneSegments']
test_pipeline = [t for t in _base_.test_pipeline if t['type'] != 'LoadSceneSegments']
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
