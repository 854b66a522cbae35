# GroupFree3D + Bridge3D on ScanNetV2: paper Table 1, row "GroupFree3D +Bridge3D" (numbers: docs/finetune.md,
# "Paper rows -> configs"). groupfree3d_plain-transformer-point-mae_4xb8-80e_scannet-3d.py (the same fine-tuning) with the encoder loaded from
# Bridge3D pretraining (configs/sam_mtp/pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py).
# Tokens: FPS/kNN (INFERENCE: Bridge3D's encoder tokenizes so and it gives no GroupFree3D code; its 3DETR tokens).
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-bridge3d_4xb8-80e_scannet-3d.py 4
_base_ = ['./groupfree3d_plain-transformer-point-mae_4xb8-80e_scannet-3d.py']

model = dict(backbone=dict(init_cfg=dict(checkpoint=_base_.bridge3d_checkpoint)))
