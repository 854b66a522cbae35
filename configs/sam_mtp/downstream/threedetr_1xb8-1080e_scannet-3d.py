# 3DETR on ScanNet v2 (18 classes, axis-aligned boxes): the from-scratch reference of the downstream stack.
# SAM-MTP fine-tuning swaps the backbone for the pretrained plain transformer and sets
# `query_source='tokens'` (docs/downstream.md). Settings: 3DETR's scripts/scannet_ep1080.sh (spec §6.4).
_base_ = [
    'mmdet3d::_base_/datasets/scannet-3d.py', 'mmdet3d::_base_/default_runtime.py',
    './_base_/threedetr_pointnet2-1080e.py'
]

custom_imports = dict(
    imports=['projects.sam_mtp', 'projects.sam_mtp.models.heads', 'projects.sam_mtp.models.detectors',
             'projects.sam_mtp.datasets.random_cuboid'],
    allow_failed_imports=False)

num_points = 40000

train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2]),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_mask_3d=True, with_seg_3d=True),
    dict(type='GlobalAlignment', rotation_axis=2),
    dict(type='PointSegClassMapping'),
    dict(type='RandomCuboidCrop', min_points=30000, crop_factor=(0.5, 1.0), min_aspect=0.8),
    dict(type='PointSample', num_points=num_points),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.087266, 0.087266], scale_ratio_range=[1.0, 1.0]),
    dict(type='Pack3DDetInputs',
         keys=['points', 'gt_bboxes_3d', 'gt_labels_3d', 'pts_semantic_mask', 'pts_instance_mask']),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6, use_dim=[0, 1, 2]),
    dict(type='GlobalAlignment', rotation_axis=2),
    dict(type='PointSample', num_points=num_points),
    dict(type='Pack3DDetInputs', keys=['points']),
]

train_dataloader = dict(
    batch_size=8,
    dataset=dict(times=1, dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# Bridge3D tracks the best AP25 and the best AP50 checkpoints separately.
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=2,
                    save_best=['mAP_0.25', 'mAP_0.50'], rule='greater'))
