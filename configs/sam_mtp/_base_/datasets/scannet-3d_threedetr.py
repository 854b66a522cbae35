# ScanNetV2 detection data as 3DETR reads it (facebookresearch/3detr scripts/scannet_ep1080.sh, datasets/scannet.py):
# 40k points, no colour, random cuboid then sampling then flips and +-5 deg rotation, 1080 real epochs (no 5x
# repeat), batch 8. Two variants of each pipeline, written out whole:
#   train_pipeline / test_pipeline                    points only (3DETR, FPS/kNN tokens)
#   segments_train_pipeline / segments_test_pipeline  + the scene's SAM segments as a point column, loaded right
#       after the points so crops and sampling carry them along (SAM-guided tokens; needs
#       <data_root>/scene_segments/<scene>.bin from tools/make_scene_segments.py)
# The dataloaders use the points-only pipelines; SAM-token configs set theirs to the segments_* ones.
_base_ = ['mmdet3d::_base_/datasets/scannet-3d.py']

num_points = 40000

backend_args = None
# Each step is named once (scannet_threedetr_) and the pipelines list them in order.
scannet_threedetr_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6,
                                     use_dim=[0, 1, 2], backend_args=backend_args)
scannet_threedetr_load_annotations = dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True,
                                          backend_args=backend_args)
scannet_threedetr_align = dict(type='GlobalAlignment', rotation_axis=2)
scannet_threedetr_crop = dict(type='RandomCuboidCrop', min_points=30000, crop_factor=(0.5, 1.0), min_aspect=0.8)
scannet_threedetr_sample = dict(type='PointSample', num_points=num_points)
scannet_threedetr_flip = dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5,
                              flip_ratio_bev_vertical=0.5)
scannet_threedetr_rotate = dict(type='GlobalRotScaleTrans', rot_range=[-0.087266, 0.087266],
                                scale_ratio_range=[1.0, 1.0])
scannet_threedetr_pack_train = dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d'])
scannet_threedetr_pack_test = dict(type='Pack3DDetInputs', keys=['points'])

train_pipeline = [
    scannet_threedetr_load_points, scannet_threedetr_load_annotations, scannet_threedetr_align,
    scannet_threedetr_crop, scannet_threedetr_sample, scannet_threedetr_flip, scannet_threedetr_rotate,
    scannet_threedetr_pack_train]
test_pipeline = [scannet_threedetr_load_points, scannet_threedetr_align, scannet_threedetr_sample,
                 scannet_threedetr_pack_test]
# LoadSceneSegments reads <data_root>/scene_segments/<scene>.bin.
segments_train_pipeline = [
    scannet_threedetr_load_points, dict(type='LoadSceneSegments'), scannet_threedetr_load_annotations,
    scannet_threedetr_align, scannet_threedetr_crop, scannet_threedetr_sample, scannet_threedetr_flip,
    scannet_threedetr_rotate, scannet_threedetr_pack_train]
segments_test_pipeline = [scannet_threedetr_load_points, dict(type='LoadSceneSegments'), scannet_threedetr_align,
                          scannet_threedetr_sample, scannet_threedetr_pack_test]

train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(times=1, dataset=dict(pipeline=train_pipeline)))  # 1080 real epochs, no 5x repeat
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
