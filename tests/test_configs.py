"""Every config under configs/ loads and builds its model; the pretraining configs keep the paper's settings,
and stage 1 -> stage 2 runs end to end through mmengine's Runner on tiny synthetic label files."""
import glob
import os
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # tests/: shared helpers
from helpers.labels import make_frame_arrays, write_label_split  # noqa: E402
from helpers.runner import one_logged_epoch  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_ROOT = osp.join(REPO, 'configs')
ALL_CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    if f'{os.sep}_base_{os.sep}' not in p)
# SAM-MTP pretraining at paper scale: the two stages (pretrain/) and their ablations (ablations/).
PRETRAIN_CONFIGS = [c for c in ALL_CONFIGS if osp.basename(c).startswith('sam-mtp-') and
                    osp.basename(osp.dirname(c)) in ('pretrain', 'ablations')]
STAGE1 = 'configs/sam_mtp/pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py'
STAGE2 = 'configs/sam_mtp/pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py'
ABLATION = 'configs/sam_mtp/ablations/sam-mtp-{}_plain-transformer_4xb16-120e_scannet-frames.py'


def _load(rel_path):
    return Config.fromfile(osp.join(REPO, rel_path))


def _walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _walk_strings(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _walk_strings(v)


def test_pretraining_configs_are_found():
    names = {osp.basename(c) for c in PRETRAIN_CONFIGS}
    assert {osp.basename(STAGE1), osp.basename(STAGE2), osp.basename(ABLATION.format('joint'))} <= names
    assert len(PRETRAIN_CONFIGS) >= 11


@pytest.mark.parametrize('rel_path', ALL_CONFIGS)
def test_config_loads_and_builds(rel_path):
    cfg = _load(rel_path)
    assert not [s for s in _walk_strings(cfg.to_dict()) if s.startswith('/') or s.startswith('~')], \
        f'{rel_path}: absolute paths in config'
    if 'model' not in cfg:  # e.g. label-generation configs: loading is the check
        return
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    from mmdet3d.registry import MODELS
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    if cfg.model.type == 'SamMtpMaskedTokenPredictor':
        teacher_ids = {id(p) for p in model.teacher.parameters()}
        assert teacher_ids and not teacher_ids & {id(p) for p in model.parameters()}


def test_main_configs_keep_the_paper_settings():
    stage1, stage2 = _load(STAGE1), _load(STAGE2)
    for cfg in (stage1, stage2):
        assert cfg.custom_imports == dict(imports=['projects.sam_mtp'], allow_failed_imports=False)
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.optimizer.lr == 1e-3 and cfg.optim_wrapper.optimizer.weight_decay == 0.05
        assert cfg.train_dataloader.batch_size * 4 == cfg.auto_scale_lr.base_batch_size == 64
        warmup, cosine = cfg.param_scheduler
        assert warmup.type == 'LinearLR' and warmup.end == 10 and warmup.convert_to_iter_based
        assert cosine.type == 'CosineAnnealingLR' and cosine.begin == 10 and cosine.end == cfg.train_cfg.max_epochs
        assert cfg.train_dataloader.dataset.data_root == 'data/scannet/sam_mtp_labels/'
        assert cfg.train_dataloader.collate_fn.type == 'sam_mtp_collate'
        assert cfg.default_hooks.checkpoint.save_last
    assert stage1.model.backbone.drop_path_rate == 0.1 and stage2.model.backbone.drop_path_rate == 0.1
    assert stage1.model.tokenizer.type == 'SAMGuidedTokenizer' and stage2.model.tokenizer.type == 'SAMGuidedTokenizer'
    assert stage2.model.mask_ratio == 0.6 and stage2.model.teacher.type == 'SamMtpDistiller'
    assert stage1.model.projector.out_channels == 768 and stage1.model.loss.use_group_weights


def test_ablation_switches():
    r2 = _load(ABLATION.format('stage1-knn-tokens-no-reweight'))
    assert r2.model.tokenizer == dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128)
    assert not r2.model.loss.use_group_weights
    r3 = _load(ABLATION.format('stage2-knn-tokens-no-reweight'))
    assert r3.model.tokenizer.type == r3.model.teacher.tokenizer.type == 'FPSKNNTokenizer'
    assert 'min_points' not in r3.model.teacher.tokenizer
    r5 = _load(ABLATION.format('stage1-no-reweight'))
    assert r5.model.tokenizer.type == 'SAMGuidedTokenizer' and not r5.model.loss.use_group_weights
    joint = _load(ABLATION.format('joint'))
    assert joint.model.type == 'SamMtpJointPretrainer' and joint.model.mask_ratio == 0.6
    assert _load(ABLATION.format('stage2-projector-target')).model.target == 'projector'
    assert _load(ABLATION.format('stage2-layernorm-target')).model.target_norm
    readme = open(osp.join(CONFIG_ROOT, 'sam_mtp', 'ablations', 'README.md')).read()
    for path in glob.glob(osp.join(CONFIG_ROOT, 'sam_mtp', 'ablations', '*.py')):
        assert osp.basename(path) in readme, f'{osp.basename(path)} is not in the ablation README'


def _tiny(cfg, data_root, work_dir):
    """Shrink a pretraining config to CPU size, on the label split in data_root."""
    small = dict(embed_dims=32, num_layers=1, num_heads=4, pointnet_channels=(16, 32, 32), pos_hidden_dims=16)
    model = cfg.model
    for part in [model] + ([model.teacher] if 'teacher' in model else []):
        part.tokenizer.update(num_points_per_token=8, min_points=4, max_tokens=16, max_fallback_tokens=2)
        part.backbone.update(small)
        if 'projector' in part:
            part.projector.update(in_channels=32, out_channels=8)
    if 'decoder' in model:
        model.decoder.update(in_channels=32, embed_dims=32, num_layers=1, pos_hidden_dims=16)
        model.instance_head.update(in_channels=32, hidden_channels=32)
        model.token_head.update(in_channels=32)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    return one_logged_epoch(cfg, data_root, work_dir)


def test_stage1_then_stage2_with_runner(tmp_path):
    import numpy as np
    from mmengine.runner import Runner
    rng = np.random.default_rng(0)
    frames = [make_frame_arrays(rng, (60, 40, 30), 20, feature_dim=8, num_groups=3) for _ in range(4)]
    data_root = str(tmp_path / 'labels')
    write_label_split(data_root, frames)
    stage1 = _tiny(_load(STAGE1), data_root, str(tmp_path / 'stage1'))
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        Runner.from_cfg(stage1).train()
    ckpt = str(tmp_path / 'stage1' / 'epoch_1.pth')
    assert osp.isfile(ckpt)
    stage2 = _tiny(_load(STAGE2), data_root, str(tmp_path / 'stage2'))
    stage2.model.teacher_checkpoint = ckpt
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        runner = Runner.from_cfg(stage2)
        runner.train()
    saved = torch.load(str(tmp_path / 'stage2' / 'epoch_1.pth'), map_location='cpu', weights_only=False)
    assert saved['state_dict'] and not [k for k in saved['state_dict'] if 'teacher' in k]
    stage1_saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    for key, value in runner.model.teacher.state_dict().items():
        assert torch.equal(value, stage1_saved['state_dict'][key]), key
    # The Runner keeps the merged config in each checkpoint's meta: fine-tuning reads the pretraining tokenizer there.
    from projects.sam_mtp.models.backbones.pretraining_tokenizer import pretraining_tokenizer_type
    assert pretraining_tokenizer_type(stage1_saved['meta']) == pretraining_tokenizer_type(saved['meta']) == \
        'SAMGuidedTokenizer'
    # TensorBoard (pretrain_runtime.py's visualizer): one event file per run under <work_dir>/<timestamp>/vis_data/,
    # holding the losses that LocalVisBackend's scalars.json records for the same iterations.
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    for stage in ('stage1', 'stage2'):
        events = glob.glob(str(tmp_path / stage / '*' / 'vis_data' / 'events.out.tfevents.*'))
        assert len(events) == 1, events
        accumulator = EventAccumulator(events[0])
        accumulator.Reload()
        logged = [json.loads(line) for line in open(osp.join(osp.dirname(events[0]), 'scalars.json'))]
        losses = {r['step']: r['loss'] for r in logged if 'loss' in r}
        assert losses and {e.step: e.value for e in accumulator.Scalars('loss')} == pytest.approx(losses)
