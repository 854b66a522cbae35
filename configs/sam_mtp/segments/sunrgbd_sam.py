# Scene segments of SUN RGB-D samples for SAM-guided fine-tuning (docs/design_choices.md#q1): SAM's automatic masks on the
# sample's own image (sunrgbd_trainval/image/<idx>.jpg, full resolution), every point projected with the info's
# depth2img (mmdet3d's K @ F @ Rtilt.T, MATLAB 1-based pixels; labels/segments/projection.py) takes the mask
# under it, the smaller mask winning on overlaps; points off the image or on no mask get -1.
#   python tools/make_scene_segments.py configs/sam_mtp/segments/sunrgbd_sam.py --data-root data/sunrgbd \
#       --info data/sunrgbd/sunrgbd_infos_train.pkl data/sunrgbd/sunrgbd_infos_val.pkl
_base_ = ['../labels/scannet_sam_dinov2.py']  # mask_source (SAM ViT-H, Bridge3D's generator settings)

segment_cfg = dict(
    type='SingleImageSegmenter',
    image_dir='sunrgbd_trainval/image',  # mmdet3d's data_prefix img of SUN RGB-D
    camera='CAM0',
    pixel_origin=1,   # SUN RGB-D's K is in MATLAB's 1-based pixel coordinates (mmdet3d's ImVoteNet subtracts 1)
    mask_size=None,   # SAM on the image at its own size (SUN RGB-D's sensors give different sizes)
    min_segment_points=1)
points_load_dim = 6
