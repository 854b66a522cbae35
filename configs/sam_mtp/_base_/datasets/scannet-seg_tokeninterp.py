# mmdet3d's ScanNet v2 segmentation pipelines (mmdet3d::_base_/datasets/scannet-seg.py: 8192-point 1.5 m patches
# of xyz + rgb, normalised colour) as the SamMtpPointBackbone segmentation configs (tokeninterp_plain-transformer*)
# read them, written out whole in two variants:
#   points_train_pipeline / points_test_pipeline      the stock ones (FPS/kNN tokens)
#   segments_train_pipeline / segments_test_pipeline  LoadSceneSegments right after LoadPointsFromFile: the SAM
#       segment id joins the points as a column after rgb and follows the patch sampling (SAM-guided tokens; needs
#       <data_root>/scene_segments/<scene>.bin from tools/make_scene_segments.py)
# Both test pipelines also map the NYU40 labels to the 20 classes (PointSegClassMapping): mmdet3d's stock ScanNet
# test pipeline does not, and SegMetric would score raw NYU40 ids (its eval_ann_info['pts_semantic_mask'] is
# whatever the last mask transform left).
# A config inherits both the stock config and this file and sets its dataloaders' pipelines to one variant; only
# new names are defined here (mmengine forbids a key defined by two bases) and the values are literal.

# LoadSceneSegments is the project's transform (the stock config imports no project).
custom_imports = dict(imports=['projects.sam_mtp'], allow_failed_imports=False)

# Each step is named once and the pipelines list them in order. S3DIS's pipelines take the same steps but for the
# patch sampling (./s3dis-seg_tokeninterp.py inherits this file), hence the seg_ names.
seg_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, use_color=True, load_dim=6,
                       use_dim=[0, 1, 2, 3, 4, 5], backend_args=None)
seg_load_annotations = dict(type='LoadAnnotations3D', with_bbox_3d=False, with_label_3d=False, with_mask_3d=False,
                            with_seg_3d=True, backend_args=None)
seg_class_mapping = dict(type='PointSegClassMapping')
seg_normalize_color = dict(type='NormalizePointsColor', color_mean=None)
seg_pack_train = dict(type='Pack3DDetInputs', keys=['points', 'pts_semantic_mask'])
seg_pack_test = dict(type='Pack3DDetInputs', keys=['points'])
scannet_seg_patch_sample = dict(type='IndoorPatchPointSample', num_points=8192, block_size=1.5, ignore_index=20,
                                use_normalized_coord=False, enlarge_size=0.2, min_unique_num=None)

points_train_pipeline = [seg_load_points, seg_load_annotations, seg_class_mapping, scannet_seg_patch_sample,
                         seg_normalize_color, seg_pack_train]
points_test_pipeline = [seg_load_points, seg_load_annotations, seg_class_mapping, seg_normalize_color, seg_pack_test]
# LoadSceneSegments reads <data_root>/scene_segments/<scene>.bin.
segments_train_pipeline = [seg_load_points, dict(type='LoadSceneSegments'), seg_load_annotations, seg_class_mapping,
                           scannet_seg_patch_sample, seg_normalize_color, seg_pack_train]
segments_test_pipeline = [seg_load_points, dict(type='LoadSceneSegments'), seg_load_annotations, seg_class_mapping,
                          seg_normalize_color, seg_pack_test]
