# S3DIS segmentation with Bridge3D-style FPS/kNN tokens (256 x 32 per patch) instead of SAM-guided tokens: the
# fine-tuning side of paper Table 3's rows without "SAM-Guided Tokenize" (encoder pretrained with kNN tokens,
# configs/sam_mtp/ablations/t3-r4_stage2_knn-tokens.py or t3-r2/t3-r3). Needs no scene segments.
_base_ = ['./tokenseg_sam-mtp-ft_s3dis-seg.py']

model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.seg_knn_tokenizer),
        in_channels=9,  # xyz, rgb, normalised xyz
        segment_channel=None,
        num_output_tokens=_base_.seg_knn_tokenizer['num_tokens'],
        # Table 3 row 4; rows 2/3 fine-tune the t3-r2 stage-1 / t3-r3 stage-2 checkpoints instead.
        init_cfg=dict(checkpoint='work_dirs/t3-r4_stage2_knn-tokens/epoch_120.pth')))

train_pipeline = [t for t in _base_.train_pipeline if t['type'] != 'LoadSceneSegments']
test_pipeline = [t for t in _base_.test_pipeline if t['type'] != 'LoadSceneSegments']
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
