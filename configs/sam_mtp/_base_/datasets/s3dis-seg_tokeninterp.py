# mmdet3d's S3DIS segmentation pipelines (mmdet3d::_base_/datasets/s3dis-seg.py: 4096-point 1 m patches of
# xyz + rgb with the normalised xyz appended, normalised colour) as the SamMtpPointBackbone segmentation configs
# (tokeninterp_plain-transformer*) read them, in two variants:
#   points_train_pipeline / points_test_pipeline      the stock ones (FPS/kNN tokens)
#   segments_train_pipeline / segments_test_pipeline  LoadSceneSegments right after LoadPointsFromFile: the SAM
#       segment id joins the points as a column after rgb and follows the patch sampling (SAM-guided tokens; needs
#       <data_root>/scene_segments/<Area_i_room>.bin from tools/make_scene_segments.py)
# mmdet3d's S3DIS and ScanNet segmentation pipelines differ only in the patch sampling: this file inherits
# ./scannet-seg_tokeninterp.py, whose steps (seg_*) and test pipelines are S3DIS's too, and writes out the train
# pipelines whole with S3DIS's patches. Both test pipelines also map the labels (PointSegClassMapping): S3DIS
# labels are already 0..12, so the mapping is the identity, kept for symmetry with ScanNet.
# A config inherits both the stock config and this file and sets its dataloaders' pipelines to one variant; only
# new names are defined here (mmengine forbids a key defined by two bases) and the values are literal.
_base_ = ['./scannet-seg_tokeninterp.py']

s3dis_seg_patch_sample = dict(type='IndoorPatchPointSample', num_points=4096, block_size=1.0, ignore_index=13,
                              use_normalized_coord=True, enlarge_size=0.2, min_unique_num=None)
points_train_pipeline = [
    _base_.seg_load_points, _base_.seg_load_annotations, _base_.seg_class_mapping, s3dis_seg_patch_sample,
    _base_.seg_normalize_color, _base_.seg_pack_train]
# LoadSceneSegments reads <data_root>/scene_segments/<Area_i_room>.bin.
segments_train_pipeline = [
    _base_.seg_load_points, dict(type='LoadSceneSegments'), _base_.seg_load_annotations, _base_.seg_class_mapping,
    s3dis_seg_patch_sample, _base_.seg_normalize_color, _base_.seg_pack_train]
