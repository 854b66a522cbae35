# Plain Transformer + Bridge3D on S3DIS (Area 5): paper Table 2, row "+Bridge3D" (numbers: docs/finetune.md,
# "Paper rows -> configs"). The SAM-MTP segmentor on FPS/kNN tokens, as the "+Point-MAE" row (the same fine-tuning),
# with the encoder loaded from
# Bridge3D pretraining (configs/sam_mtp/pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py).
# Tokens: FPS/kNN, 256 x 32 per patch (INFERENCE: Bridge3D's encoder tokenizes so; its segmentation code is withheld).
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/tokeninterp_plain-transformer-bridge3d_2xb16-50e_s3dis-seg.py 2
_base_ = ['../ablations/tokeninterp_plain-transformer-sam-mtp-knn-tokens_2xb16-50e_s3dis-seg.py']

model = dict(backbone=dict(init_cfg=dict(checkpoint=_base_.bridge3d_checkpoint)))
