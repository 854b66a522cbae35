# Runtime of the 3DETR configs: mmdet3d's default runtime, the project's modules, and a check of the data export
# the 3DETR recipe assumes.
_base_ = ['mmdet3d::_base_/default_runtime.py']

custom_imports = dict(imports=['projects.sam_mtp'], allow_failed_imports=False)

# 3DETR evaluates every 10 epochs; Bridge3D keeps the best-AP25 and the best-AP50 checkpoints separately.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2, save_last=True,
                    save_best=['mAP_0.25', 'mAP_0.50'], rule='greater'))

# 3DETR's data (VoteNet's ScanNet and SUN RGB-D exports) holds 50k points per scene, and RandomCuboidCrop's
# min_points=30000 and the 40k/20k point samples assume it. mmdet3d's SUN RGB-D converter samples 50k too, but its
# ScanNet export keeps every mesh vertex unless run with --max_num_point 50000 (docs/finetune.md): warn, once per
# dataset, when scenes hold more than twice the recipe's count.
points_per_scene = 50000
custom_hooks = [
    dict(type='ScenePointCountHook', expected_points=points_per_scene, max_ratio=2.0,
         hint="3DETR's ScanNet data is VoteNet's 50k-point export: export with mmdet3d's "
              'data/scannet/batch_load_scannet_data.py --max_num_point 50000 (docs/finetune.md, "Data")'),
]
