# Runtime of the SAM-MTP pretraining stages (no validation loop: pretraining has no metric).
default_scope = 'mmdet3d'
custom_imports = dict(imports=['projects.sam_mtp'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Every 10 epochs plus the last one; keep the 3 newest (the stage-2 teacher is the last stage-1 one).
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

# Seeded: mmengine seeds python, numpy and torch (data order, augmentations, tokenizer sampling, masking,
# drop-path, initialisation all draw from them) and the sampler shuffles with the same seed. Without a seed
# mmengine draws a random one and no two runs agree. deterministic=True (torch.use_deterministic_algorithms)
# is left to the CPU demo configs: several CUDA kernels have no deterministic version and would raise.
randomness = dict(seed=0, deterministic=False, diff_rank_seed=False)

# Losses, learning rate and timings of every logged iteration go to <work_dir>/<timestamp>/vis_data/: scalars.json
# (LocalVisBackend) and TensorBoard event files (TensorboardVisBackend): tensorboard --logdir work_dirs/
# (docs/pretraining.md, "Watching a run").
visualizer = dict(
    type='Visualizer', vis_backends=[dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])

log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
