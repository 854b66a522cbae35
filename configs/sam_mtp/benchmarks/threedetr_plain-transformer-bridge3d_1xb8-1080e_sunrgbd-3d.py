# 3DETR + Bridge3D on SUN RGB-D: paper Table 1, row "3DETR +Bridge3D" (numbers: docs/finetune.md, "Paper rows ->
# configs"). threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py (as "+Point-MAE") with the encoder loaded from Bridge3D pretraining
# (configs/sam_mtp/pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py, same encoder keys).
# Tokens: FPS/kNN (2048 x 128) + FPS queries (no SAM), as Bridge3D's own 3DETR fine-tuning (Downstream/3detr) does.
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_plain-transformer-bridge3d_1xb8-1080e_sunrgbd-3d.py
_base_ = ['./threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py']

model = dict(
    backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=_base_.bridge3d_checkpoint, prefix='backbone.')))
