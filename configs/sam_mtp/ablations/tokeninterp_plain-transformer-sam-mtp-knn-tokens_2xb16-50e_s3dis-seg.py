# S3DIS segmentation with Bridge3D-style FPS/kNN tokens (256 x 32 per patch) instead of SAM-guided tokens: the
# fine-tuning side of paper Table 3's rows without "SAM-Guided Tokenize" (README.md; encoder pretrained with kNN
# tokens: row 4's stage 2 sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames.py, or rows 2/3's
# sam-mtp-stage1-knn-tokens-no-reweight_* / sam-mtp-stage2-knn-tokens-no-reweight_*). Needs no scene segments.
_base_ = ['../benchmarks/tokeninterp_plain-transformer-sam-mtp_2xb16-50e_s3dis-seg.py']

model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.seg_knn_tokenizer),
        in_channels=9,  # xyz, rgb, normalised xyz
        segment_channel=None,
        num_output_tokens=_base_.seg_knn_tokenizer['num_tokens'],
        # Table 3 row 4; rows 2/3 fine-tune their own checkpoints instead (above).
        init_cfg=dict(checkpoint='work_dirs/sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames/'
                                 'epoch_120.pth')))

# The points-only pipelines of _base_/datasets/s3dis-seg_tokeninterp.py (the test one with the class mapping).
train_pipeline = _base_.points_train_pipeline
test_pipeline = _base_.points_test_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
