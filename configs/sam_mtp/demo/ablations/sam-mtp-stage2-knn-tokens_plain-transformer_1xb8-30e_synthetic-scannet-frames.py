# Table 3 row 4, stage 2 at demo scale: ../../ablations/sam-mtp-stage2-knn-tokens_plain-transformer_4xb16-120e_scannet-frames.py's switch on ../sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py;
# teacher = sam-mtp-stage1-knn-tokens_plain-transformer_1xb8-15e_synthetic-scannet-frames.py's checkpoint.
_base_ = ['../sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py']

model = dict(
    tokenizer=dict(_delete_=True, **_base_.demo_knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **_base_.demo_knn_tokenizer)))
