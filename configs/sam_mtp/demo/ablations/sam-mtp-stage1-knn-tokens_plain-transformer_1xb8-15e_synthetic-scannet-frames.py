# Table 3 row 4 (Dense Distill. + MTP + Balanced Re-weight, no SAM tokens), stage 1 at demo scale:
# ../../ablations/sam-mtp-stage1-knn-tokens_plain-transformer_4xb16-120e_scannet-frames.py's switch on ../sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py (FPS+kNN tokens as
# sam-mtp-stage1-knn-tokens-no-reweight_plain-transformer_1xb8-15e_synthetic-scannet-frames.py, group re-weighting kept). Stage 2: sam-mtp-stage2-knn-tokens_plain-transformer_1xb8-30e_synthetic-scannet-frames.py.
_base_ = ['../sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py']

model = dict(tokenizer=dict(_delete_=True, **_base_.demo_knn_tokenizer))
