# 3DETR on ScanNetV2 with an encoder pretrained on Bridge3D-style FPS/kNN tokens: the fine-tuning side of paper
# Table 3's rows without "SAM-Guided Tokenize" (README.md).
# ../benchmarks/threedetr_plain-transformer_1xb8-1080e_scannet-3d.py (kNN tokens, FPS queries) with the encoder
# loaded from a kNN-token pretraining run: row 4's stage 2
# (sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames.py); rows 2/3 fine-tune the
# sam-mtp-stage1-knn-tokens-no-reweight_* / sam-mtp-stage2-knn-tokens-no-reweight_* checkpoints instead.
_base_ = ['../benchmarks/threedetr_plain-transformer_1xb8-1080e_scannet-3d.py']

model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames/'
                                 'epoch_120.pth',
                      prefix='backbone.')))
