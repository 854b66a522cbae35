# Table 3 row 4, stage 2: FPS+kNN tokens, teacher = the matching stage 1
# (sam-mtp-stage1-knn-tokens_*).
#   --cfg-options model.teacher_checkpoint=work_dirs/$STAGE1/epoch_120.pth
# with STAGE1=sam-mtp-stage1-knn-tokens_plain-transformer_4xb16-120e_scannet-frames
_base_ = ['../pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py']

knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128)
model = dict(
    tokenizer=dict(_delete_=True, **knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **knn_tokenizer)))
