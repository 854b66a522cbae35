# mmdet3d's S3DIS segmentation pipelines (mmdet3d::_base_/datasets/s3dis-seg.py: 4096-point 1 m patches of
# xyz + rgb with the normalised xyz appended, normalised colour) as the SamMtpPointBackbone segmentation configs
# (tokeninterp_plain-transformer*) read them, written out whole in two variants:
#   points_train_pipeline / points_test_pipeline      the stock ones (FPS/kNN tokens)
#   segments_train_pipeline / segments_test_pipeline  LoadSceneSegments right after LoadPointsFromFile: the SAM
#       segment id joins the points as a column after rgb and follows the patch sampling (SAM-guided tokens; needs
#       <data_root>/scene_segments/<Area_i_room>.bin from tools/make_scene_segments.py)
# Both test pipelines also map the labels (PointSegClassMapping): S3DIS labels are already 0..12, so the mapping is
# the identity, kept for symmetry with ScanNet.
# A config inherits both the stock config and this file and sets its dataloaders' pipelines to one variant; only
# new names are defined here (mmengine forbids a key defined by two bases) and the values are literal.
points_train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, use_color=True, load_dim=6,
         use_dim=[0, 1, 2, 3, 4, 5], backend_args=None),
    dict(type='LoadAnnotations3D', with_bbox_3d=False, with_label_3d=False, with_mask_3d=False, with_seg_3d=True,
         backend_args=None),
    dict(type='PointSegClassMapping'),
    dict(type='IndoorPatchPointSample', num_points=4096, block_size=1.0, ignore_index=13,
         use_normalized_coord=True, enlarge_size=0.2, min_unique_num=None),
    dict(type='NormalizePointsColor', color_mean=None),
    dict(type='Pack3DDetInputs', keys=['points', 'pts_semantic_mask']),
]
points_test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, use_color=True, load_dim=6,
         use_dim=[0, 1, 2, 3, 4, 5], backend_args=None),
    dict(type='LoadAnnotations3D', with_bbox_3d=False, with_label_3d=False, with_mask_3d=False, with_seg_3d=True,
         backend_args=None),
    dict(type='PointSegClassMapping'),
    dict(type='NormalizePointsColor', color_mean=None),
    dict(type='Pack3DDetInputs', keys=['points']),
]
segments_train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, use_color=True, load_dim=6,
         use_dim=[0, 1, 2, 3, 4, 5], backend_args=None),
    dict(type='LoadSceneSegments'),  # <data_root>/scene_segments/<Area_i_room>.bin
    dict(type='LoadAnnotations3D', with_bbox_3d=False, with_label_3d=False, with_mask_3d=False, with_seg_3d=True,
         backend_args=None),
    dict(type='PointSegClassMapping'),
    dict(type='IndoorPatchPointSample', num_points=4096, block_size=1.0, ignore_index=13,
         use_normalized_coord=True, enlarge_size=0.2, min_unique_num=None),
    dict(type='NormalizePointsColor', color_mean=None),
    dict(type='Pack3DDetInputs', keys=['points', 'pts_semantic_mask']),
]
segments_test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, use_color=True, load_dim=6,
         use_dim=[0, 1, 2, 3, 4, 5], backend_args=None),
    dict(type='LoadSceneSegments'),
    dict(type='LoadAnnotations3D', with_bbox_3d=False, with_label_3d=False, with_mask_3d=False, with_seg_3d=True,
         backend_args=None),
    dict(type='PointSegClassMapping'),
    dict(type='NormalizePointsColor', color_mean=None),
    dict(type='Pack3DDetInputs', keys=['points']),
]
