# Bridge3D's text targets for ScanNet labels (tools/add_text_labels.py): CLIP ViT-B/16's text tower (Bridge3D's
# Preprocess/tag2text_SAM.py encodes captions with it; its class-name table is also ViT-B/16), the 18 ScanNet
# detection classes of its Tag2Text + Grounding-DINO prompt list, prompt-ensembled over MaskCLIP's 85 templates.
#   python tools/add_text_labels.py configs/sam_mtp/labels/bridge3d_text_clip.py \
#       --labels-root data/scannet/sam_mtp_labels --split train --frames-root data/scannet/posed_images
# Inputs next to each scene's frames (see docs/pretraining.md, "Bridge3D pretraining"):
#   <scene>/class_map/<frame_id>.npy   per-pixel class ids, as Bridge3D's pred_matrix (ids 2..19, 255 = none)
#   <scene>/caption/<frame_id>_caption.txt   the frame's caption (Bridge3D: Tag2Text)
# Checkpoint paths are relative to the working directory.
text_source = dict(
    type='CLIPTextFeatureSource',
    checkpoint='checkpoints/clip_vit-b16_openai_state_dict.pth',
    bpe_path='checkpoints/bpe_simple_vocab_16e6.txt.gz',
    device='cuda')

text_label_cfg = dict(
    class_names=['cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf', 'picture', 'counter',
                 'desk', 'curtain', 'refrigerator', 'shower curtain', 'toilet', 'sink', 'bathtub',
                 'other furniture'],
    class_ids=[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],  # tag2text_SAM.py's NAME_MAP
    templates='maskclip',
    class_maps=dict(folder='class_map', suffix='.npy'),
    captions=dict(type='files', folder='caption', suffix='_caption.txt'))
