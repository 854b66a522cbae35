# 3DETR on ScanNetV2 with an encoder pretrained on Bridge3D-style FPS/kNN tokens: the fine-tuning side of paper
# Table 3's rows without "SAM-Guided Tokenize". 3detr_plain-transformer_scannet-3d.py (kNN tokens, FPS queries)
# with the encoder loaded from a kNN-token pretraining run (configs/sam_mtp/ablations/t3-r4_stage2_knn-tokens.py;
# rows 2/3 fine-tune the t3-r2 stage-1 / t3-r3 stage-2 checkpoints instead).
_base_ = ['./3detr_plain-transformer_scannet-3d.py']

model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='work_dirs/t3-r4_stage2_knn-tokens/epoch_120.pth',
                      prefix='backbone.')))
