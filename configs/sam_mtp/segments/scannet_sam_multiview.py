# Scene segments of ScanNet scenes for SAM-guided fine-tuning (docs/design_choices.md#q1): the SAM region maps of the exported
# frames, projected onto mmdet3d's points/<scene>.bin with a depth test and merged across views
# (projects/sam_mtp/labels/segments/multi_view.py). With --labels-dir the region maps of tools/generate_sam_labels.py
# are reused; without it the mask source below (SAM ViT-H, the label config's settings) runs on the frames now.
#   python tools/make_scene_segments.py configs/sam_mtp/segments/scannet_sam_multiview.py --data-root data/scannet \
#       --info data/scannet/scannet_infos_train.pkl data/scannet/scannet_infos_val.pkl \
#       --frames-root data/scannet/posed_images --labels-dir data/scannet/sam_mtp_labels
_base_ = ['../labels/scannet_sam_dinov2.py']  # mask_source (SAM ViT-H, Bridge3D's generator settings)

segment_cfg = dict(
    type='PosedFramesSegmenter',
    frame_stride=_base_.label_cfg['frame_stride'],  # the labelled frames
    mask_size=_base_.label_cfg['mask_size'],
    depth_scale=_base_.label_cfg['depth_scale'],
    depth_tolerance=0.1,  # metres between a point's camera depth and the depth image for "visible"
    iou_threshold=0.7,    # link two views' regions at this IoU over the points both views see
    min_shared_points=5,
    min_segment_points=1)
points_load_dim = 6  # floats per point in points/<scene>.bin (xyz + rgb)
