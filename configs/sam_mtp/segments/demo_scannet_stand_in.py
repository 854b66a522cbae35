# The CPU demo's scene segments (tools/demo.py): the region maps of the demo's label run (STAND-IN masks: the
# synthetic frames' instance images) merged across views onto the synthetic scenes' points. Without --labels-dir
# the stand-in mask source below reads the instance images directly.
#   python tools/make_scene_segments.py configs/sam_mtp/segments/demo_scannet_stand_in.py \
#       --data-root data/demo/scannet --info data/demo/scannet/scannet_infos_train.pkl \
#       data/demo/scannet/scannet_infos_val.pkl --frames-root data/demo/scannet/posed_images \
#       --labels-dir data/demo/scannet/sam_mtp_labels
_base_ = ['./scannet_sam_multiview.py']

# STAND-IN for SAM (as configs/sam_mtp/labels/demo_stand_in.py): the synthetic frames' instance images.
mask_source = dict(_delete_=True, type='InstanceImageMaskSource', folder='instance', ignore_ids=(0, ))
segment_cfg = dict(mask_size=(240, 320))  # the synthetic generator's 320x240 frames
