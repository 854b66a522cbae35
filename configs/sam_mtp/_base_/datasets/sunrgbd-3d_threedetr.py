# SUN RGB-D v1 detection data as 3DETR reads it (facebookresearch/3detr scripts/sunrgbd_ep1080.sh,
# datasets/sunrgbd.py): 20k points, flip, +-30 deg rotation, scale 0.85-1.15, THEN random cuboid (crop 0.75-1,
# aspect 0.75), then sampling; batch 8. Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's
# default v2: docs/finetune.md, Data. Two variants of each pipeline, written out whole:
#   train_pipeline / test_pipeline                    points only (3DETR, FPS/kNN tokens)
#   segments_train_pipeline / segments_test_pipeline  + the sample's SAM segments as a point column, loaded right
#       after the points (SAM-guided tokens; needs <data_root>/scene_segments/<idx>.bin)
# The dataloaders use the points-only pipelines; SAM-token configs set theirs to the segments_* ones.
_base_ = ['mmdet3d::_base_/datasets/sunrgbd-3d.py']

num_points = 20000

backend_args = None
# Each step is named once (sunrgbd_threedetr_) and the pipelines list them in order.
sunrgbd_threedetr_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6,
                                     use_dim=[0, 1, 2], backend_args=backend_args)
sunrgbd_threedetr_load_annotations = dict(type='LoadAnnotations3D', backend_args=backend_args)
sunrgbd_threedetr_flip = dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5)
sunrgbd_threedetr_rotate = dict(type='GlobalRotScaleTrans', rot_range=[-0.523599, 0.523599],
                                scale_ratio_range=[0.85, 1.15])
sunrgbd_threedetr_crop = dict(type='RandomCuboidCrop', min_points=30000, crop_factor=(0.75, 1.0), min_aspect=0.75)
sunrgbd_threedetr_sample = dict(type='PointSample', num_points=num_points)
sunrgbd_threedetr_pack_train = dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d'])
sunrgbd_threedetr_pack_test = dict(type='Pack3DDetInputs', keys=['points'])

train_pipeline = [
    sunrgbd_threedetr_load_points, sunrgbd_threedetr_load_annotations, sunrgbd_threedetr_flip,
    sunrgbd_threedetr_rotate, sunrgbd_threedetr_crop, sunrgbd_threedetr_sample, sunrgbd_threedetr_pack_train]
test_pipeline = [sunrgbd_threedetr_load_points, sunrgbd_threedetr_sample, sunrgbd_threedetr_pack_test]
# LoadSceneSegments reads <data_root>/scene_segments/<idx>.bin.
segments_train_pipeline = [
    sunrgbd_threedetr_load_points, dict(type='LoadSceneSegments'), sunrgbd_threedetr_load_annotations,
    sunrgbd_threedetr_flip, sunrgbd_threedetr_rotate, sunrgbd_threedetr_crop, sunrgbd_threedetr_sample,
    sunrgbd_threedetr_pack_train]
segments_test_pipeline = [sunrgbd_threedetr_load_points, dict(type='LoadSceneSegments'), sunrgbd_threedetr_sample,
                          sunrgbd_threedetr_pack_test]

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(times=1, dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
