# Table 3 row 2 ("Dense Distill." only) at demo scale: ../../ablations/sam-mtp-stage1-knn-tokens-no-reweight_plain-transformer_4xb16-120e_scannet-frames.py's
# switches on ../sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py. FPS+kNN tokens of the demo's token size, 128 centres x 64 points (they cover the
# 8192 points of a frame about once, as the full-scale 256 x 128 cover 20,000 points 1.6 times; the same groups
# as point-mae_plain-transformer_1xb8-30e_synthetic-scannet-frames.py), each taking the target of its centre point's region; no group re-weighting.
_base_ = ['../sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py']

model = dict(tokenizer=dict(_delete_=True, **_base_.demo_knn_tokenizer), loss=dict(use_group_weights=False))
# Without re-weighting the K-means groups are not needed.
train_dataloader = dict(dataset=dict(require_groups=False))
