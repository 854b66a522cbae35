# Stage 2 on the CPU demo data (tools/demo.py). The frozen teacher is the demo's stage-1 model:
#   --cfg-options model.teacher_checkpoint=work_dirs/demo/stage1/epoch_12.pth
_base_ = ['../stage2_scannet.py', './_base_/demo_scale.py']

model = dict(
    tokenizer=_base_.demo_tokenizer,
    teacher=dict(projector=dict(out_channels=_base_.demo_feature_dim), tokenizer=_base_.demo_tokenizer))
train_dataloader = _base_.demo_train_dataloader
param_scheduler = _base_.demo_param_scheduler
train_cfg = dict(max_epochs=_base_.demo_max_epochs)
default_hooks = _base_.demo_default_hooks
log_processor = dict(window_size=5)
