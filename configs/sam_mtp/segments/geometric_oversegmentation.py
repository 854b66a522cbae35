# Scene segments WITHOUT images: a graph-based geometric over-segmentation (normals + colours on a voxel kNN graph,
# Felzenszwalb-Huttenlocher, in the spirit of ScanNet's mesh segmentator; labels/segments/geometric.py).
# This is NOT SAM and not the paper's setting; every file's sidecar says "method": "geometric", "sam": false.
# Use it for S3DIS without the 2D-3D-S images or for custom point clouds.
#   python tools/make_scene_segments.py configs/sam_mtp/segments/geometric_oversegmentation.py \
#       --data-root data/s3dis --info data/s3dis/s3dis_infos_Area_{1,2,3,4,5,6}.pkl
segment_cfg = dict(
    type='GeometricSegmenter',
    voxel_size=0.02,        # metres; points are averaged per voxel first
    normal_knn=16,          # voxels in each normal estimate
    graph_knn=8,            # graph neighbours per voxel
    max_edge_length=None,   # metres; longer kNN links are not graph edges (None: keep every kNN link)
    color_weight=0.1,       # edge weight = (1 - |n_a . n_b|) + color_weight * |rgb_a - rgb_b| / sqrt(3)
    threshold=0.1,          # Felzenszwalb-Huttenlocher k: larger -> larger segments
    min_segment_voxels=50,  # smaller components join their neighbour
    min_segment_points=1)
points_load_dim = 6
