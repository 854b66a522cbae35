# STAND-IN text targets for the CPU demo (tools/add_text_labels.py on the demo labels): no CLIP weights exist
# here, so a small seeded random CLIP text tower with a byte-level tokenizer encodes the texts (different names
# get different features, with no language semantics); the synthetic generator's ground-truth NYU40 label images
# stand in for Grounded-SAM's class maps, and a caption listing the classes present stands in for Tag2Text's.
#   python tools/add_text_labels.py configs/sam_mtp/labels/bridge3d_text_demo.py \
#       --labels-root data/demo/scannet/sam_mtp_labels --split train --frames-root data/demo/scannet/posed_images
_base_ = ['./bridge3d_text_clip.py']

text_source = dict(_delete_=True, type='RandomCLIPTextFeatureSource', seed=0, device='cpu',
                   arch=dict(width=64, layers=2, heads=4, embed_dims=32, context_length=32))

text_label_cfg = dict(
    class_names=['cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf', 'picture', 'counter',
                 'desk', 'curtain', 'refrigerator', 'shower curtain', 'toilet', 'sink', 'bathtub',
                 'garbage bin'],
    # NYU40 ids of the synthetic scenes' detection classes (datasets/synthetic/rooms.py SCANNET_DET_NYU40_IDS); walls
    # and floors (1, 2) are background, as in Bridge3D.
    class_ids=[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39],
    templates='plain',
    class_maps=dict(folder='label', suffix='.png'),
    captions=dict(_delete_=True, type='class_list'))
