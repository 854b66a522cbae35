# mmdet3d's SUN RGB-D detection pipelines (mmdet3d::_base_/datasets/sunrgbd-3d.py: 20k points with a height column,
# flip, +-30 deg rotation, scale 0.85-1.15) as the SamMtpPointBackbone GroupFree3D configs read them, written out
# whole in two variants:
#   points_train_pipeline / points_test_pipeline      the stock ones (FPS/kNN tokens)
#   segments_train_pipeline / segments_test_pipeline  LoadSceneSegments right after LoadPointsFromFile: the sample's
#       SAM segment id joins the points as a column (xyz + height + segment id) (SAM-guided tokens; needs
#       <data_root>/scene_segments/<idx>.bin from tools/make_scene_segments.py)
# A config inherits both the stock data and this file and sets its dataloaders' pipelines to one variant; only new
# names are defined here (mmengine forbids a key defined by two bases) and the values are literal.
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.

# Each step is named once (sunrgbd_gf3d_: SUN RGB-D, GroupFree3D) and the pipelines list them in order.
sunrgbd_gf3d_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=True, load_dim=6,
                                use_dim=[0, 1, 2], backend_args=None)
sunrgbd_gf3d_load_annotations = dict(type='LoadAnnotations3D')
sunrgbd_gf3d_flip = dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5)
sunrgbd_gf3d_rotate = dict(type='GlobalRotScaleTrans', rot_range=[-0.523599, 0.523599],
                           scale_ratio_range=[0.85, 1.15], shift_height=True)
sunrgbd_gf3d_sample = dict(type='PointSample', num_points=20000)
sunrgbd_gf3d_pack_train = dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d'])

points_train_pipeline = [
    sunrgbd_gf3d_load_points, sunrgbd_gf3d_load_annotations, sunrgbd_gf3d_flip, sunrgbd_gf3d_rotate,
    sunrgbd_gf3d_sample, sunrgbd_gf3d_pack_train]
# LoadSceneSegments reads <data_root>/scene_segments/<idx>.bin.
segments_train_pipeline = [
    sunrgbd_gf3d_load_points, dict(type='LoadSceneSegments'), sunrgbd_gf3d_load_annotations, sunrgbd_gf3d_flip,
    sunrgbd_gf3d_rotate, sunrgbd_gf3d_sample, sunrgbd_gf3d_pack_train]

# The test steps: the stock 1x1 test-time augmentation (one scale, flip=False) around the sampling.
sunrgbd_gf3d_test_rotate = dict(type='GlobalRotScaleTrans', rot_range=[0, 0], scale_ratio_range=[1., 1.],
                                translation_std=[0, 0, 0])
sunrgbd_gf3d_test_augment = dict(type='MultiScaleFlipAug3D', img_scale=(1333, 800), pts_scale_ratio=1, flip=False,
                                 transforms=[sunrgbd_gf3d_test_rotate, sunrgbd_gf3d_flip, sunrgbd_gf3d_sample])
sunrgbd_gf3d_pack_test = dict(type='Pack3DDetInputs', keys=['points'])
points_test_pipeline = [sunrgbd_gf3d_load_points, sunrgbd_gf3d_test_augment, sunrgbd_gf3d_pack_test]
segments_test_pipeline = [
    sunrgbd_gf3d_load_points, dict(type='LoadSceneSegments'), sunrgbd_gf3d_test_augment, sunrgbd_gf3d_pack_test]
