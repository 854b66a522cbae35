# The one learning-rate schedule of the project's cosine configs: a linear warm-up, then a cosine to eta_min, both
# stepped per iteration (paper §4.1 for pretraining; 3DETR's recipe; the segmentation configs). Only the shape is
# here; each config composes the numbers of its own recipe:
#   param_scheduler = [dict(_base_.lr_warmup, end=W, start_factor=F),
#                      dict(_base_.lr_cosine, begin=W, T_max=E - W, end=E)]
# with W warm-up epochs and E = train_cfg.max_epochs, written where max_epochs is (classic configs do not
# re-evaluate derived values: a config that changes max_epochs composes again; tests/test_config_paths.py checks
# that every cosine ends at max_epochs). param_scheduler itself is not defined here: the segmentation configs also
# inherit mmdet3d's schedule, and mmengine refuses a key defined by two bases.
lr_warmup = dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, convert_to_iter_based=True)
lr_cosine = dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, convert_to_iter_based=True)
