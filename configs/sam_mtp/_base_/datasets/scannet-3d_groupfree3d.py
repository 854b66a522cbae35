# mmdet3d's GroupFree3D ScanNetV2 pipelines (mmdet3d::groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py: 50k
# points, flips, +-5 deg rotation, 1x1 test-time augmentation) as the SamMtpPointBackbone configs read them, written
# out whole in two variants:
#   points_train_pipeline / points_test_pipeline      the stock ones (FPS/kNN tokens)
#   segments_train_pipeline / segments_test_pipeline  LoadSceneSegments right after LoadPointsFromFile: the scene's
#       SAM segment id joins the points as a column (xyz + segment id) and follows every sampling, flip and
#       rotation of its point (SAM-guided tokens; needs <data_root>/scene_segments/<scene>.bin from
#       tools/make_scene_segments.py)
# A config inherits both the stock config and this file and sets its dataloaders' pipelines to one variant; only
# new names are defined here (mmengine forbids a key defined by two bases) and the values are literal.

# Each step is named once (scannet_gf3d_: ScanNet, GroupFree3D) and the pipelines list them in order.
scannet_gf3d_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=6, use_dim=[0, 1, 2],
                                backend_args=None)
scannet_gf3d_load_annotations = dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True,
                                     with_mask_3d=True, with_seg_3d=True, backend_args=None)
scannet_gf3d_align = dict(type='GlobalAlignment', rotation_axis=2)
scannet_gf3d_class_mapping = dict(type='PointSegClassMapping')
scannet_gf3d_sample = dict(type='PointSample', num_points=50000)
scannet_gf3d_flip = dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5)
scannet_gf3d_rotate = dict(type='GlobalRotScaleTrans', rot_range=[-0.087266, 0.087266], scale_ratio_range=[1.0, 1.0])
scannet_gf3d_pack_train = dict(
    type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d', 'pts_semantic_mask', 'pts_instance_mask'])

points_train_pipeline = [
    scannet_gf3d_load_points, scannet_gf3d_load_annotations, scannet_gf3d_align, scannet_gf3d_class_mapping,
    scannet_gf3d_sample, scannet_gf3d_flip, scannet_gf3d_rotate, scannet_gf3d_pack_train]
# LoadSceneSegments reads <data_root>/scene_segments/<scene>.bin.
segments_train_pipeline = [
    scannet_gf3d_load_points, dict(type='LoadSceneSegments'), scannet_gf3d_load_annotations, scannet_gf3d_align,
    scannet_gf3d_class_mapping, scannet_gf3d_sample, scannet_gf3d_flip, scannet_gf3d_rotate, scannet_gf3d_pack_train]

# The test steps: the stock 1x1 test-time augmentation (one scale, flip=False) around the sampling.
scannet_gf3d_test_rotate = dict(type='GlobalRotScaleTrans', rot_range=[0, 0], scale_ratio_range=[1., 1.],
                                translation_std=[0, 0, 0])
scannet_gf3d_test_augment = dict(type='MultiScaleFlipAug3D', img_scale=(1333, 800), pts_scale_ratio=1, flip=False,
                                 transforms=[scannet_gf3d_test_rotate, scannet_gf3d_flip, scannet_gf3d_sample])
scannet_gf3d_pack_test = dict(type='Pack3DDetInputs', keys=['points'])
points_test_pipeline = [scannet_gf3d_load_points, scannet_gf3d_align, scannet_gf3d_test_augment, scannet_gf3d_pack_test]
segments_test_pipeline = [scannet_gf3d_load_points, dict(type='LoadSceneSegments'), scannet_gf3d_align,
                          scannet_gf3d_test_augment, scannet_gf3d_pack_test]
