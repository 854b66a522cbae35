"""Evidence that the pretraining learns: stage 1 and stage 2 on synthetic labelled frames, with linear probes.

Synthetic frames hold objects of 5 classes with different geometry (blob, plane, rod, box surface, ring); each
object is one SAM region whose 2D target is its class embedding plus noise, and whose K-means group is its
class (imbalanced frequencies, so the group weights matter). The script writes the label files with
``labels.formats.frame_labels``, reads them back through ``SamMtpFrameDataset`` + ``sam_mtp_collate`` (the training data
path), then

1. trains stage 1 (``SamMtpDistiller``) and reports its loss at the start and the end;
2. fits a logistic-regression probe of the object class on frozen region-token features of held-out frames,
   for the trained encoder and for the same encoder at random initialisation;
3. trains stage 2 (``SamMtpMaskedTokenPredictor``) with the stage-1 model as frozen teacher, once with a
   random student (the default) and once with the student initialised from the stage-1 encoder, and probes
   both students.

Objects are placed independently, so a masked token's class cannot be inferred from its neighbours here:
the random student learns classes only through L_ins (the pooled teacher feature), which is why it stays
below the teacher on this toy data.

    python benchmarks/probe_learning.py [--steps 400] [--stage2-steps 300] [--threads 2] [--out probe.json]
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

import projects.sam_mtp.datasets  # noqa: E402,F401
import projects.sam_mtp.models  # noqa: E402,F401
from projects.sam_mtp.datasets import SamMtpFrameDataset, sam_mtp_collate  # noqa: E402
from projects.sam_mtp.testing import write_label_split  # noqa: E402

CLASSES = ('blob', 'plane', 'rod', 'box', 'ring')
CLASS_FREQ = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
FEATURE_DIM = 32
EMBED = 64


def sample_object(rng, cls, n):
    """n points of one object of class ``cls`` around the origin, randomly rotated about z."""
    if cls == 0:  # blob
        p = rng.normal(0, 0.2, (n, 3))
    elif cls == 1:  # horizontal plane
        p = np.c_[rng.uniform(-0.4, 0.4, (n, 2)), rng.normal(0, 0.01, n)]
    elif cls == 2:  # vertical rod
        p = np.c_[rng.normal(0, 0.03, (n, 2)), rng.uniform(-0.5, 0.5, n)]
    elif cls == 3:  # cube surface
        p = rng.uniform(-0.25, 0.25, (n, 3))
        axis = rng.integers(0, 3, n)
        p[np.arange(n), axis] = rng.choice([-0.25, 0.25], n)
    else:  # ring
        t = rng.uniform(0, 2 * math.pi, n)
        p = np.c_[0.35 * np.cos(t), 0.35 * np.sin(t), rng.normal(0, 0.02, n)]
    a = rng.uniform(0, 2 * math.pi)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    return p @ rot.T


def make_frame(rng, class_embed):
    num_objects = rng.integers(5, 10)
    classes = rng.choice(len(CLASSES), num_objects, p=CLASS_FREQ)
    points, region = [], []
    for r, cls in enumerate(classes, start=1):
        n = int(rng.integers(80, 220))
        points.append(sample_object(rng, cls, n) + np.r_[rng.uniform(-3, 3, 2), rng.uniform(0.3, 1.5)])
        region.append(np.full(n, r))
    clutter = int(0.1 * sum(len(p) for p in points))
    points.append(rng.uniform([-3.5, -3.5, 0], [3.5, 3.5, 2], (clutter, 3)))
    region.append(np.zeros(clutter))
    feat = class_embed[classes] + 0.3 * rng.normal(size=(num_objects, FEATURE_DIM))
    pts = np.concatenate(points)
    return dict(points=pts.astype(np.float32), colors=np.zeros((len(pts), 3), np.uint8),
                point_region=np.concatenate(region).astype(np.int32), region_feat=feat.astype(np.float16),
                region_group=classes.astype(np.int32), region_area=np.full(num_objects, 100, np.int32))


def write_split(root, name, frames):
    """The split's label files and info under ``<root>/<name>/`` (groups = classes)."""
    write_label_split(osp.join(root, name), frames, split=name, num_groups=len(CLASSES))


def loader(root, name, train, batch_size, num_points=2048):
    pipeline = [dict(type='FrameCenterPoints', axes='xy')]
    if train:
        pipeline += [dict(type='FrameRandomRotScale', scale_range=(0.9, 1.1)),
                     dict(type='FrameRandomJitter', sigma=0.005, clip=0.02)]
    pipeline += [dict(type='FrameSamplePoints', num_points=num_points), dict(type='PackFrameInputs')]
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        dataset = SamMtpFrameDataset(ann_file=f'{name}_labels.pkl', data_root=osp.join(root, name), pipeline=pipeline)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, collate_fn=sam_mtp_collate,
                      drop_last=train)


def model_cfgs():
    tokenizer = dict(type='SAMGuidedTokenizer', num_points_per_token=32, min_points=16, max_tokens=32,
                     max_fallback_tokens=4)
    backbone = dict(type='PlainPointTransformer', embed_dims=EMBED, num_layers=2, num_heads=4, mlp_ratio=2.,
                    drop_path_rate=0.1, pointnet_channels=(32, 64, 64), pos_hidden_dims=32)
    stage1 = dict(type='SamMtpDistiller', tokenizer=tokenizer, backbone=backbone,
                  projector=dict(type='TokenProjector', in_channels=EMBED, out_channels=FEATURE_DIM),
                  loss=dict(type='GroupBalancedDistillLoss'))
    stage2 = dict(type='SamMtpMaskedTokenPredictor', tokenizer=tokenizer, backbone=backbone, teacher=stage1,
                  decoder=dict(type='MaskedTokenDecoder', in_channels=EMBED, embed_dims=EMBED, num_layers=1,
                               num_heads=4, pos_hidden_dims=32),
                  instance_head=dict(type='TokenProjector', in_channels=EMBED, num_layers=2),
                  token_head=dict(type='TokenProjector', in_channels=EMBED), mask_ratio=0.6)
    return stage1, stage2


def train(model, data, steps, lr):
    optim = build_optim_wrapper(model, dict(type='OptimWrapper',
                                            optimizer=dict(type='AdamW', lr=lr, weight_decay=0.05)))
    model.train()
    history, step = [], 0
    while step < steps:
        for batch in data:
            log = model.train_step(batch, optim)
            history.append(float(log['loss'].detach()))
            step += 1
            if step >= steps:
                break
    return history


@torch.no_grad()
def region_features(model, data):
    """Encoder features of region tokens and their class (= group in this synthetic set)."""
    model.eval()
    feats, labels = [], []
    for batch in data:
        features, tokens = model.extract_feat(batch['inputs'])
        b, m = tokens.target_mask.nonzero(as_tuple=True)
        feats.append(features[b, m])
        labels.append(batch['data_samples']['region_group'][b, tokens.region_index[b, m] - 1])
    return torch.cat(feats).numpy(), torch.cat(labels).numpy()


def probe(model, train_data, test_data):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler
    x_train, y_train = region_features(model, train_data)
    x_test, y_test = region_features(model, test_data)
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(max_iter=3000, C=0.5).fit(scaler.transform(x_train), y_train)
    pred = clf.predict(scaler.transform(x_test))
    return dict(accuracy=float((pred == y_test).mean()), balanced_accuracy=float(balanced_accuracy_score(y_test, pred)),
                train_tokens=int(len(y_train)), test_tokens=int(len(y_test)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=400, help='stage-1 training steps')
    parser.add_argument('--stage2-steps', type=int, default=400)
    parser.add_argument('--frames', type=int, default=64, help='pretraining frames')
    parser.add_argument('--probe-frames', type=int, default=32, help='frames per probe split')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the results as JSON here')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    class_embed = rng.normal(size=(len(CLASSES), FEATURE_DIM))
    start = time.time()
    results = dict(config=vars(args))
    with tempfile.TemporaryDirectory() as root:
        write_split(root, 'pretrain', [make_frame(rng, class_embed) for _ in range(args.frames)])
        write_split(root, 'probe_train', [make_frame(rng, class_embed) for _ in range(args.probe_frames)])
        write_split(root, 'probe_test', [make_frame(rng, class_embed) for _ in range(args.probe_frames)])
        pretrain = loader(root, 'pretrain', True, args.batch)
        probe_train = loader(root, 'probe_train', False, args.batch)
        probe_test = loader(root, 'probe_test', False, args.batch)
        stage1_cfg, stage2_cfg = model_cfgs()
        from mmdet3d.registry import MODELS

        torch.manual_seed(args.seed)
        random_model = MODELS.build(stage1_cfg)
        results['probe_random_init'] = probe(random_model, probe_train, probe_test)

        torch.manual_seed(args.seed)
        stage1 = MODELS.build(stage1_cfg)
        history = train(stage1, pretrain, args.steps, args.lr)
        window = max(1, min(20, len(history) // 5))
        results['stage1_loss'] = dict(first=float(np.mean(history[:window])), last=float(np.mean(history[-window:])),
                                      steps=len(history))
        results['probe_stage1'] = probe(stage1, probe_train, probe_test)

        ckpt = osp.join(root, 'stage1.pth')
        torch.save(dict(state_dict=stage1.state_dict()), ckpt)
        # Stage 2 twice: the default random student, and the student initialised from the stage-1 encoder
        # through the backbone's init_cfg (the docs/design_choices.md#q6 ablation,
        # configs/sam_mtp/ablations/sam-mtp-stage2-student-from-teacher_plain-transformer_4xb16-120e_scannet-frames.py).
        for key, backbone_init in [('stage2', None),
                                   ('stage2_teacher_init', dict(type='Pretrained', checkpoint=ckpt,
                                                                prefix='backbone.'))]:
            cfg = dict(stage2_cfg, teacher_checkpoint=ckpt)
            if backbone_init is not None:
                cfg['backbone'] = dict(cfg['backbone'], init_cfg=backbone_init)
            torch.manual_seed(args.seed + 1)
            stage2 = MODELS.build(cfg)
            stage2.init_weights()
            history2 = train(stage2, pretrain, args.stage2_steps, args.lr)
            window = max(1, min(20, len(history2) // 5))
            results[f'{key}_loss'] = dict(first=float(np.mean(history2[:window])),
                                          last=float(np.mean(history2[-window:])), steps=len(history2))
            results[f'probe_{key}_student'] = probe(stage2, probe_train, probe_test)
    results['seconds'] = time.time() - start

    lines = [f'classes={len(CLASSES)} (chance accuracy {CLASS_FREQ.max():.2f} by majority, balanced 0.20)',
             f'stage-1 loss: {results["stage1_loss"]["first"]:.4f} -> {results["stage1_loss"]["last"]:.4f} '
             f'over {results["stage1_loss"]["steps"]} steps',
             f'stage-2 loss (random student): {results["stage2_loss"]["first"]:.4f} -> '
             f'{results["stage2_loss"]["last"]:.4f} over {results["stage2_loss"]["steps"]} steps',
             f'stage-2 loss (student from stage 1): {results["stage2_teacher_init_loss"]["first"]:.4f} -> '
             f'{results["stage2_teacher_init_loss"]["last"]:.4f}',
             f'{"linear probe (held-out frames)":<34} {"accuracy":>9} {"balanced":>9}']
    for key, name in [('probe_random_init', 'random-init encoder'), ('probe_stage1', 'stage-1 encoder'),
                      ('probe_stage2_student', 'stage-2 student (random init)'),
                      ('probe_stage2_teacher_init_student', 'stage-2 student (init stage 1)')]:
        lines.append(f'{name:<34} {results[key]["accuracy"]:>9.3f} {results[key]["balanced_accuracy"]:>9.3f}')
    lines.append(f'time {results["seconds"]:.0f} s')
    sys.stdout.write('\n'.join(lines) + '\n')
    if args.out:
        folder = osp.dirname(osp.abspath(args.out))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix='.json')
        with os.fdopen(fd, 'w') as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
