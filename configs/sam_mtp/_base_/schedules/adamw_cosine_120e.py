# Paper §4.1 / spec §6.1: AdamW lr 1e-3, weight decay 0.05, cosine with 10 warm-up epochs, total batch 64.
# Epochs are not stated (spec Q3): 120 per stage, Bridge3D's setting. If you change max_epochs in a child
# config, also change the cosine's T_max/end below (classic configs do not re-evaluate derived values).
max_epochs = 120
warmup_epochs = 10

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    # As Bridge3D/Point-MAE: no decay on norms, biases, other 1-D parameters and the learned mask token.
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., flat_decay_mult=0.,
                       custom_keys={'mask_token': dict(decay_mult=0.)}))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
auto_scale_lr = dict(enable=False, base_batch_size=64)
