# Scene segments of S3DIS rooms from the Stanford 2D-3D-S images (docs/design_choices.md#q1): each room of mmdet3d's
# points/Area_<N>_<room>.bin is registered to its 2D-3D-S frames (the Aligned Version's rotation and mmdet3d's
# shift are not stored anywhere), SAM runs on the frames and the regions are merged across views with a depth
# test (labels/segments/stanford_2d3ds.py, labels/segments/multi_view.py). Layout read: docs/finetune.md.
#   python tools/make_scene_segments.py configs/sam_mtp/segments/s3dis_2d3ds_sam.py --data-root data/s3dis \
#       --info data/s3dis/s3dis_infos_Area_{1,2,3,4,5,6}.pkl --images-root data/2d3ds [--fallback-geometric]
_base_ = ['../labels/scannet_sam_dinov2.py']  # mask_source (SAM ViT-H, Bridge3D's generator settings)

segment_cfg = dict(
    type='S3DIS2D3DSSegmenter',
    frame_stride=1,         # every 2D-3D-S image of the room (about 260 per room)
    mask_size=(540, 540),   # SAM's region maps of the 1080x1080 images at half size
    depth_tolerance=0.1,
    iou_threshold=0.7,
    min_shared_points=5,
    min_segment_points=1,
    # room -> area registration: candidate z-rotations (the Aligned Version rotates rooms about z), floor-plan
    # correlation on a 5 cm grid with ~120k depth samples of the frames, ICP on 20k room points; fitness = depth
    # consistency with 12 of the frames (fraction of unoccluded room points within 5 cm of the measured depth)
    registration=dict(angles=(0., 90., 180., 270.), grid=0.05, frame_points=120000, check_views=12,
                      max_points=20000, icp_iterations=25, fit_tolerance=0.05, min_fitness=0.8, seed=0))
points_load_dim = 6
