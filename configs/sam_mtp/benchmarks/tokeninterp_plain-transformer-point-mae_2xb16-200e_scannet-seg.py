# Plain Transformer + Point-MAE on ScanNetV2: paper Table 2, row "+Point-MAE" (the paper gives no ScanNetV2 number;
# docs/finetune.md, "Paper rows -> configs"). tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py with the encoder
# loaded from Point-MAE pretraining on scenes and its tokens instead of SAM-guided ones (no scene segments needed).
# Tokens: FPS/kNN, 256 x 32 per patch (INFERENCE: Point-MAE has no SAM segments and tokenizes so; no rival seg code).
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/tokeninterp_plain-transformer-point-mae_2xb16-200e_scannet-seg.py 2
_base_ = ['./tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py']

model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.seg_knn_tokenizer),
        in_channels=6,  # xyz, rgb
        segment_channel=None,
        num_output_tokens=_base_.seg_knn_tokenizer['num_tokens'],
        init_cfg=dict(checkpoint=_base_.point_mae_checkpoint)))

train_pipeline = _base_.points_train_pipeline  # no scene segments: FPS/kNN tokens
test_pipeline = _base_.points_test_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
