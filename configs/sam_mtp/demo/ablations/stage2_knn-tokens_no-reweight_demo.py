# Table 3 row 3 (Dense Distill. + MTP) at demo scale: ../../ablations/t3-r3_stage2_knn-tokens_no-reweight.py's
# switches on ../stage2_demo.py; teacher = stage1_knn-tokens_no-reweight_demo.py's checkpoint
# (--cfg-options model.teacher_checkpoint=...; tools/demo.py --methods passes it).
_base_ = ['../stage2_demo.py']

demo_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=128, num_points_per_token=64)
model = dict(
    tokenizer=dict(_delete_=True, **demo_knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **demo_knn_tokenizer), loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
