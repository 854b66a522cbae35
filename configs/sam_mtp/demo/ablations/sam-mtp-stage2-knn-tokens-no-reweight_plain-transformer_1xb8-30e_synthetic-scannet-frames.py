# Table 3 row 3 (Dense Distill. + MTP) at demo scale: ../../ablations/sam-mtp-stage2-knn-tokens-no-reweight_plain-transformer_4xb16-120e_scannet-frames.py's
# switches on ../sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py; teacher = sam-mtp-stage1-knn-tokens-no-reweight_plain-transformer_1xb8-15e_synthetic-scannet-frames.py's checkpoint
# (--cfg-options model.teacher_checkpoint=...; tools/demo.py --methods passes it).
_base_ = ['../sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py']

model = dict(
    tokenizer=dict(_delete_=True, **_base_.demo_knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **_base_.demo_knn_tokenizer), loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
