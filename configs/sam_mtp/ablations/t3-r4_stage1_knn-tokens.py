# Table 3 row 4 (Dense Distill. + MTP + Balanced Re-weight, no SAM tokens), stage 1: FPS+kNN tokens with
# group-balanced re-weighting. Stage 2: t3-r4_stage2_knn-tokens.py.
_base_ = ['../stage1_scannet.py']

model = dict(tokenizer=dict(_delete_=True, type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128))
