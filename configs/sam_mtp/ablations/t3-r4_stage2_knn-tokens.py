# Table 3 row 4, stage 2: FPS+kNN tokens, teacher = t3-r4_stage1_knn-tokens.
#   --cfg-options model.teacher_checkpoint=work_dirs/t3-r4_stage1_knn-tokens/epoch_120.pth
_base_ = ['../stage2_scannet.py']

knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128)
model = dict(
    tokenizer=dict(_delete_=True, **knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **knn_tokenizer)))
