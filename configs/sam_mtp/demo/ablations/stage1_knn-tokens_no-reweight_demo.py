# Table 3 row 2 ("Dense Distill." only) at demo scale: ../../ablations/t3-r2_stage1_knn-tokens_no-reweight.py's
# switches on ../stage1_demo.py. FPS+kNN tokens of the demo's token size, 128 centres x 64 points (they cover the
# 8192 points of a frame about once, as the full-scale 256 x 128 cover 20,000 points 1.6 times; the same groups
# as point-mae_demo.py), each taking the target of its centre point's region; no group re-weighting.
_base_ = ['../stage1_demo.py']

demo_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=128, num_points_per_token=64)
model = dict(tokenizer=dict(_delete_=True, **demo_knn_tokenizer), loss=dict(use_group_weights=False))
# Without re-weighting the K-means groups are not needed.
train_dataloader = dict(dataset=dict(require_groups=False))
