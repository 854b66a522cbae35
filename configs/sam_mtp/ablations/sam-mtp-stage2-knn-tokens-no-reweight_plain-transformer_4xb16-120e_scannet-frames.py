# Table 3 row 3 (Dense Distill. + MTP): stage 2 on FPS+kNN tokens, teacher = the row-2 stage-1 model.
#   --cfg-options model.teacher_checkpoint=work_dirs/$STAGE1/epoch_120.pth
# with STAGE1=sam-mtp-stage1-knn-tokens-no-reweight_plain-transformer_4xb16-120e_scannet-frames
_base_ = ['../pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py']

knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128)
model = dict(
    tokenizer=dict(_delete_=True, **knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **knn_tokenizer), loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
