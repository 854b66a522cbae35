# Table 3 row 3 (Dense Distill. + MTP): stage 2 on FPS+kNN tokens, teacher = the row-2 stage-1 model.
#   --cfg-options model.teacher_checkpoint=work_dirs/t3-r2_stage1_knn-tokens_no-reweight/epoch_120.pth
_base_ = ['../stage2_scannet.py']

knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128)
model = dict(
    tokenizer=dict(_delete_=True, **knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **knn_tokenizer), loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
