# The optimizer of the segmentation configs (tokeninterp_plain-transformer*), an INFERENCE: the paper gives no
# segmentation settings (docs/design_choices.md#q11). AdamW at 3DETR's fine-tuning lr, no decay on norms, biases and
# other 1-D parameters, gradients clipped at norm 10. The configs replace mmdet3d's optimizer with it
# (optim_wrapper = dict(_base_.tokeninterp_optim_wrapper, _delete_=True)) and compose the warm-up + cosine schedule
# of ./warmup-cosine.py (inherited) over their own epochs. Only new names here: the configs also inherit mmdet3d's
# schedule, and mmengine refuses a key defined by two bases.
_base_ = ['./warmup-cosine.py']

tokeninterp_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=10, norm_type=2))
