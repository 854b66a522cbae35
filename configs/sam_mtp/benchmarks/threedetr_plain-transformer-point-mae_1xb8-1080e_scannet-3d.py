# 3DETR + Point-MAE on ScanNetV2: paper Table 1, row "3DETR +Point-MAE" (numbers: docs/finetune.md, "Paper rows ->
# configs"). threedetr_plain-transformer_1xb8-1080e_scannet-3d.py with the encoder loaded from Point-MAE pretraining on scenes
# (configs/sam_mtp/pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py, same encoder keys).
# Tokens: FPS/kNN + FPS queries (no SAM), as Point-MAE's encoder and Bridge3D's 3DETR fine-tuning of rivals tokenize.
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_plain-transformer-point-mae_1xb8-1080e_scannet-3d.py
_base_ = ['./threedetr_plain-transformer_1xb8-1080e_scannet-3d.py']

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=_base_.point_mae_checkpoint, prefix='backbone.')))
