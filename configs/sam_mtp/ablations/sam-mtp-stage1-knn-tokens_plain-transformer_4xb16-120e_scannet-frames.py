# Table 3 row 4 (Dense Distill. + MTP + Balanced Re-weight, no SAM tokens), stage 1: FPS+kNN tokens with
# group-balanced re-weighting. Stage 2:
# sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames.py.
_base_ = ['../pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(tokenizer=dict(_delete_=True, type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128))
