# ScanNet RGB-D frames (one every 25 of the train split, ~78k) with offline SAM/DINOv2 labels, as written by
# the label generation tools into data_root (labels/formats/frame_labels.py describes the files).
dataset_type = 'SamMtpFrameDataset'
data_root = 'data/scannet/sam_mtp_labels/'
num_points = 20000  # Bridge3D's points per frame (docs/design_choices.md#q7)

train_pipeline = [
    dict(type='FrameCenterPoints', axes='xy'),
    dict(type='FrameRandomRotScale', rotation_range=3.14159265, scale_range=(0.8, 1.2)),
    dict(type='FrameRandomJitter', sigma=0.01, clip=0.05),
    dict(type='FrameRandomDropout', max_ratio=0.1),
    dict(type='FrameSamplePoints', num_points=num_points),
    dict(type='PackFrameInputs'),
]
# The same frames packed with Bridge3D's text targets (pretrain/bridge3d_*.py).
bridge3d_train_pipeline = [
    dict(type='FrameCenterPoints', axes='xy'),
    dict(type='FrameRandomRotScale', rotation_range=3.14159265, scale_range=(0.8, 1.2)),
    dict(type='FrameRandomJitter', sigma=0.01, clip=0.05),
    dict(type='FrameRandomDropout', max_ratio=0.1),
    dict(type='FrameSamplePoints', num_points=num_points),
    dict(type='PackBridge3DInputs'),
]

# Total batch 64 = 16 per GPU x 4 GPUs (the paper's 4x A100); scale lr with --auto-scale-lr otherwise.
train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='sam_mtp_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train_labels.pkl',
        pipeline=train_pipeline,
        require_groups=True,
        skip_empty_frames=True))
