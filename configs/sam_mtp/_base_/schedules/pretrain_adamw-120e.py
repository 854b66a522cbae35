# Optimizer and length of the pretraining stages (paper §4.1): AdamW lr 1e-3, weight decay 0.05,
# total batch 64, 10 warm-up epochs; the configs compose the warm-up + cosine schedule of ./warmup-cosine.py from
# max_epochs and warmup_epochs (from 1e-3 x lr, cosine to 1e-6). Epochs are not stated (docs/design_choices.md#q3): 120 per stage,
# Bridge3D's setting.
max_epochs = 120
warmup_epochs = 10

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    # As Bridge3D/Point-MAE: no decay on norms, biases, other 1-D parameters and the learned mask token.
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
                       custom_keys={'mask_token': dict(decay_mult=0.)}))

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(enable=False, base_batch_size=64)
