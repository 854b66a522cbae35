# Plain Transformer + Point-MAE on S3DIS (Area 5): paper Table 2, row "+Point-MAE" (numbers: docs/finetune.md,
# "Paper rows -> configs"). tokeninterp_plain-transformer-sam-mtp-knn-tokens_2xb16-50e_s3dis-seg.py (the SAM-MTP segmentor on FPS/kNN tokens) with the
# encoder loaded from Point-MAE pretraining on scenes.
# Tokens: FPS/kNN, 256 x 32 per patch (INFERENCE: Point-MAE has no SAM segments and tokenizes so; no rival seg code).
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/tokeninterp_plain-transformer-point-mae_2xb16-50e_s3dis-seg.py 2
_base_ = ['../ablations/tokeninterp_plain-transformer-sam-mtp-knn-tokens_2xb16-50e_s3dis-seg.py']

model = dict(backbone=dict(init_cfg=dict(checkpoint=_base_.point_mae_checkpoint)))
