# Table 3 row 4 (Dense Distill. + MTP + Balanced Re-weight, no SAM tokens), stage 1 at demo scale:
# ../../ablations/t3-r4_stage1_knn-tokens.py's switch on ../stage1_demo.py (FPS+kNN tokens as
# stage1_knn-tokens_no-reweight_demo.py, group re-weighting kept). Stage 2: stage2_knn-tokens_demo.py.
_base_ = ['../stage1_demo.py']

demo_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=128, num_points_per_token=64)
model = dict(tokenizer=dict(_delete_=True, **demo_knn_tokenizer))
