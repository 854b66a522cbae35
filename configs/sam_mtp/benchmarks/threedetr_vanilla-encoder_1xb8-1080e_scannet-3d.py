# 3DETR on ScanNetV2 (18 classes, axis-aligned boxes): paper Table 1, row "3DETR" (62.1 AP25 / 37.9 AP50).
# facebookresearch/3detr's scripts/scannet_ep1080.sh: 3DETR's encoder, 256 queries, 40k points, no colour, random
# cuboid then sampling then flips and +-5 deg rotation (its datasets/scannet.py order). The SAM-MTP rows
# (configs/sam_mtp/benchmarks/threedetr_plain-transformer*_scannet-3d.py) inherit this file and replace only the
# backbone. Data and pipelines: _base_/datasets/scannet-3d_threedetr.py.
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py
_base_ = [
    '../_base_/datasets/scannet-3d_threedetr.py',
    '../_base_/models/threedetr.py',
    '../_base_/schedules/threedetr-1080e.py',
    '../_base_/threedetr_runtime.py',
    '../_base_/schedules/warmup-cosine.py',
]

# 9 linear warm-up epochs from 1e-6, then cosine to 1e-6, per iteration (docs/downstream.md: the cosine phase here
# starts at the end of warm-up).
param_scheduler = [
    dict(_base_.lr_warmup, start_factor=1e-6 / _base_.base_lr, end=_base_.warmup_epochs),
    dict(_base_.lr_cosine, begin=_base_.warmup_epochs, T_max=_base_.max_epochs - _base_.warmup_epochs,
         end=_base_.max_epochs),
]
