# ScanNet RGB-D frames (one every 25 of the train split, ~78k) with offline SAM/DINOv2 labels, as written by
# the label generation tools into data_root (labels/formats/frame_labels.py describes the files).
dataset_type = 'SamMtpFrameDataset'
data_root = 'data/scannet/sam_mtp_labels/'
num_points = 20000  # Bridge3D's points per frame (docs/design_choices.md#q7)

# Each step is named once and the pipelines list them in order.
frames_center = dict(type='FrameCenterPoints', axes='xy')
frames_rotate_scale = dict(type='FrameRandomRotScale', rotation_range=3.14159265, scale_range=(0.8, 1.2))
frames_jitter = dict(type='FrameRandomJitter', sigma=0.01, clip=0.05)
frames_dropout = dict(type='FrameRandomDropout', max_ratio=0.1)
frames_sample = dict(type='FrameSamplePoints', num_points=num_points)

train_pipeline = [frames_center, frames_rotate_scale, frames_jitter, frames_dropout, frames_sample,
                  dict(type='PackFrameInputs')]
# The same frames packed with Bridge3D's text targets (pretrain/bridge3d_*.py).
bridge3d_train_pipeline = [frames_center, frames_rotate_scale, frames_jitter, frames_dropout, frames_sample,
                           dict(type='PackBridge3DInputs')]

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
