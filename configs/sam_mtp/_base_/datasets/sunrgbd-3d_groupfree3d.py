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
points_train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=True, load_dim=6, use_dim=[0, 1, 2],
         backend_args=None),
    dict(type='LoadAnnotations3D'),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.523599, 0.523599], scale_ratio_range=[0.85, 1.15],
         shift_height=True),
    dict(type='PointSample', num_points=20000),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
]
points_test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=True, load_dim=6, use_dim=[0, 1, 2],
         backend_args=None),
    dict(type='MultiScaleFlipAug3D', img_scale=(1333, 800), pts_scale_ratio=1, flip=False,
         transforms=[
             dict(type='GlobalRotScaleTrans', rot_range=[0, 0], scale_ratio_range=[1., 1.],
                  translation_std=[0, 0, 0]),
             dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5),
             dict(type='PointSample', num_points=20000),
         ]),
    dict(type='Pack3DDetInputs', keys=['points']),
]
segments_train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=True, load_dim=6, use_dim=[0, 1, 2],
         backend_args=None),
    dict(type='LoadSceneSegments'),  # <data_root>/scene_segments/<idx>.bin
    dict(type='LoadAnnotations3D'),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.523599, 0.523599], scale_ratio_range=[0.85, 1.15],
         shift_height=True),
    dict(type='PointSample', num_points=20000),
    dict(type='Pack3DDetInputs', keys=['points', 'gt_bboxes_3d', 'gt_labels_3d']),
]
segments_test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=True, load_dim=6, use_dim=[0, 1, 2],
         backend_args=None),
    dict(type='LoadSceneSegments'),
    dict(type='MultiScaleFlipAug3D', img_scale=(1333, 800), pts_scale_ratio=1, flip=False,
         transforms=[
             dict(type='GlobalRotScaleTrans', rot_range=[0, 0], scale_ratio_range=[1., 1.],
                  translation_std=[0, 0, 0]),
             dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5),
             dict(type='PointSample', num_points=20000),
         ]),
    dict(type='Pack3DDetInputs', keys=['points']),
]
