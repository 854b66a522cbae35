# 3DETR + Point-MAE on ScanNetV2: paper Table 1, row "3DETR +Point-MAE" (numbers: docs/finetune.md, "Paper rows ->
# configs"). 3detr_plain-transformer_scannet-3d.py with the encoder loaded from Point-MAE pretraining on scenes
# (configs/sam_mtp/pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py, same encoder keys).
# Tokens: FPS/kNN + FPS queries (no SAM), as Point-MAE's encoder and Bridge3D's 3DETR fine-tuning of rivals tokenize.
#   python tools/train.py configs/sam_mtp/finetune/3detr_point-mae-ft_scannet-3d.py
_base_ = ['./3detr_plain-transformer_scannet-3d.py']

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=_base_.point_mae_checkpoint, prefix='backbone.')))
