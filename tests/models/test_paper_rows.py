"""The paper's rival rows ("+Point-MAE", "+Bridge3D" of Tables 1 and 2) as fine-tuning configs: each differs from
its base config only in the encoder checkpoint and, where the base uses SAM-guided tokens, the tokenizer; the docs
table "Paper rows -> configs" names an existing config for every row, covers every paper-row config and quotes the
paper's numbers; a Point-MAE demo checkpoint (one Runner iteration) loads strictly into the rival configs."""
import glob
import os.path as osp
import re
import sys

import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

import projects.sam_mtp  # noqa: F401  (registers modules and the CPU point ops)

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))  # tests/: shared helpers
from helpers.configs import flatten as _flatten  # noqa: E402
from helpers.runner import point_mae_one_iteration  # noqa: E402
from helpers.segmentation import segmentation_loss_backward  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FINETUNE = 'configs/sam_mtp/benchmarks/'
DOCS = osp.join(REPO, 'docs', 'finetune.md')
POINT_MAE_DEMO = 'configs/sam_mtp/demo/point-mae_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'
# Default checkpoints: work_dirs/<pretraining config name>/epoch_120.pth, where tools/train.py saves them.
CHECKPOINT = {
    'point-mae': 'work_dirs/point-mae_plain-transformer_8xb8-120e_scannet-frames/epoch_120.pth',
    'bridge3d': 'work_dirs/bridge3d_plain-transformer_8xb8-120e_scannet-frames/epoch_120.pth',
}
INIT = 'model.backbone.init_cfg.'
# The tokenizer switch SAM-guided -> FPS/kNN, flattened: the SAM tokenizer's caps go, the FPS count comes (the
# points per token are the same in both), the segment column leaves the points.
SAM_TO_KNN = {'model.backbone.tokenizer.' + k for k in
              ('type', 'num_tokens', 'min_points', 'max_tokens', 'max_fallback_tokens', 'fallback_size')} | {
                  'model.backbone.in_channels', 'model.backbone.segment_channel'}
DET_KNN = dict(type='FPSKNNTokenizer', num_tokens=2048, num_points_per_token=128)  # Bridge3D's 3DETR tokens
SEG_KNN = dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=32)
# new config: (base config, method, flattened keys that differ, tokenizer or None when the base's is kept)
RIVAL_ROWS = {
    'threedetr_plain-transformer-point-mae_1xb8-1080e_scannet-3d.py': ('threedetr_plain-transformer_1xb8-1080e_scannet-3d.py', 'point-mae',
                                        {INIT + 'type', INIT + 'checkpoint', INIT + 'prefix'}, None),
    'threedetr_plain-transformer-point-mae_1xb8-1080e_sunrgbd-3d.py': ('threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py', 'point-mae',
                                        {INIT + 'type', INIT + 'checkpoint', INIT + 'prefix'}, None),
    'threedetr_plain-transformer-bridge3d_1xb8-1080e_scannet-3d.py': (
        'threedetr_plain-transformer_1xb8-1080e_scannet-3d.py', 'bridge3d', {INIT + 'type', INIT + 'checkpoint', INIT + 'prefix'},
        None),
    'threedetr_plain-transformer-bridge3d_1xb8-1080e_sunrgbd-3d.py': (
        'threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py', 'bridge3d', {INIT + 'type', INIT + 'checkpoint', INIT + 'prefix'},
        None),
    'groupfree3d_plain-transformer-point-mae_4xb8-80e_scannet-3d.py': ('groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py', 'point-mae',
                                               SAM_TO_KNN | {INIT + 'checkpoint', 'model.backbone.num_output_tokens'},
                                               DET_KNN),
    'groupfree3d_plain-transformer-point-mae_4xb8-80e_sunrgbd-3d.py': ('groupfree3d_plain-transformer-sam-mtp_4xb8-80e_sunrgbd-3d.py', 'point-mae',
                                               SAM_TO_KNN | {INIT + 'checkpoint', 'model.backbone.num_output_tokens'},
                                               DET_KNN),
    'groupfree3d_plain-transformer-bridge3d_4xb8-80e_scannet-3d.py': ('groupfree3d_plain-transformer-point-mae_4xb8-80e_scannet-3d.py', 'bridge3d',
                                              {INIT + 'checkpoint'}, None),
    'groupfree3d_plain-transformer-bridge3d_4xb8-80e_sunrgbd-3d.py': ('groupfree3d_plain-transformer-point-mae_4xb8-80e_sunrgbd-3d.py', 'bridge3d',
                                              {INIT + 'checkpoint'}, None),
    # 256 SAM slots before and 256 kNN tokens after: num_output_tokens keeps its value.
    'tokeninterp_plain-transformer-point-mae_2xb16-200e_scannet-seg.py': ('tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py', 'point-mae',
                                             SAM_TO_KNN | {INIT + 'checkpoint'}, SEG_KNN),
    'tokeninterp_plain-transformer-point-mae_2xb16-50e_s3dis-seg.py': (
        '../ablations/tokeninterp_plain-transformer-sam-mtp-knn-tokens_2xb16-50e_s3dis-seg.py', 'point-mae', {INIT + 'checkpoint'},
                                           None),
    'tokeninterp_plain-transformer-bridge3d_2xb16-200e_scannet-seg.py': ('tokeninterp_plain-transformer-point-mae_2xb16-200e_scannet-seg.py', 'bridge3d', {INIT + 'checkpoint'},
                                            None),
    'tokeninterp_plain-transformer-bridge3d_2xb16-50e_s3dis-seg.py': (
        '../ablations/tokeninterp_plain-transformer-sam-mtp-knn-tokens_2xb16-50e_s3dis-seg.py', 'bridge3d', {INIT + 'checkpoint'},
                                          None),
}

# The paper's numbers (Table 1: AP25, AP50; Table 2: mIoU, mAcc) for every row this repository has a config for,
# transcribed from the paper's Tables 1 and 2; None where the paper prints "-".
PAPER = {
    ('Table 1', '3DETR', 'ScanNetV2'): (62.1, 37.9),
    ('Table 1', '3DETR', 'SUN RGB-D'): (58.0, 30.3),
    ('Table 1', '3DETR +Plain Transformer', 'ScanNetV2'): (61.1, 38.6),
    ('Table 1', '3DETR +Plain Transformer', 'SUN RGB-D'): (57.6, 31.9),
    ('Table 1', '3DETR +Point-MAE', 'ScanNetV2'): (63.4, 40.6),
    ('Table 1', '3DETR +Point-MAE', 'SUN RGB-D'): None,
    ('Table 1', '3DETR +Bridge3D', 'ScanNetV2'): (65.3, 44.2),
    ('Table 1', '3DETR +Bridge3D', 'SUN RGB-D'): (61.8, 37.1),
    ('Table 1', '3DETR +Ours', 'ScanNetV2'): (68.2, 48.4),
    ('Table 1', '3DETR +Ours', 'SUN RGB-D'): (63.5, 39.5),
    ('Table 1', 'GroupFree3D', 'ScanNetV2'): (67.3, 48.9),
    ('Table 1', 'GroupFree3D', 'SUN RGB-D'): (63.0, 45.2),
    ('Table 1', 'GroupFree3D +Plain Transformer', 'ScanNetV2'): (66.1, 48.3),
    ('Table 1', 'GroupFree3D +Plain Transformer', 'SUN RGB-D'): (62.2, 45.0),
    ('Table 1', 'GroupFree3D +Point-MAE', 'ScanNetV2'): (67.4, 49.8),
    ('Table 1', 'GroupFree3D +Point-MAE', 'SUN RGB-D'): (63.9, 46.1),
    ('Table 1', 'GroupFree3D +Bridge3D', 'ScanNetV2'): (69.1, 51.9),
    ('Table 1', 'GroupFree3D +Bridge3D', 'SUN RGB-D'): (67.9, 48.5),
    ('Table 1', 'GroupFree3D +Ours', 'ScanNetV2'): (72.3, 55.7),
    ('Table 1', 'GroupFree3D +Ours', 'SUN RGB-D'): (68.9, 52.1),
    ('Table 2', 'Plain Transformer', 'S3DIS'): (61.1, 67.2),
    ('Table 2', 'Plain Transformer', 'ScanNetV2'): (67.3, 73.1),
    ('Table 2', 'Plain Transformer +Point-MAE', 'S3DIS'): (64.8, 70.2),
    ('Table 2', 'Plain Transformer +Point-MAE', 'ScanNetV2'): None,
    ('Table 2', 'Plain Transformer +Bridge3D', 'S3DIS'): (70.2, 76.1),
    ('Table 2', 'Plain Transformer +Bridge3D', 'ScanNetV2'): (73.9, 80.2),
    ('Table 2', 'Plain Transformer +Ours', 'S3DIS'): (71.8, 78.2),
    ('Table 2', 'Plain Transformer +Ours', 'ScanNetV2'): (75.4, 81.5),
}
DATASET_IN_NAME = {'ScanNetV2': 'scannet', 'SUN RGB-D': 'sunrgbd', 'S3DIS': 's3dis'}
# What a paper row's config name says about its method (the row name's suffix after the detector/segmentor).
METHOD_IN_NAME = {'+Point-MAE': '-point-mae_', '+Bridge3D': '-bridge3d_', '+Ours': '-sam-mtp_'}


def _load(rel):
    return Config.fromfile(osp.join(REPO, rel))


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def _without_scene_segments(node):
    """The config with every LoadSceneSegments transform removed from its lists (pipelines)."""
    if isinstance(node, dict):
        return {k: _without_scene_segments(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_without_scene_segments(v) for v in node
                if not (isinstance(v, dict) and v.get('type') == 'LoadSceneSegments')]
    return node


def _transform_types(node):
    """Types of every transform in every list of dicts of the config (pipelines and their copies)."""
    if isinstance(node, dict):
        return [t for v in node.values() for t in _transform_types(v)]
    if isinstance(node, (list, tuple)):
        own = [v['type'] for v in node if isinstance(v, dict) and isinstance(v.get('type'), str)]
        return own + [t for v in node for t in _transform_types(v)]
    return []


def _dataloaders(cfg):
    """What the runs load (the dataset bases also define unused pipeline variants, e.g. segments_*_pipeline)."""
    return {key: cfg.get(key) for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')}


# ------------------------------------------------------------------------------------------------ config deltas
@pytest.mark.parametrize('name', sorted(RIVAL_ROWS))
def test_rival_row_config_differs_from_its_base_only_in_checkpoint_and_tokens(name):
    base_name, method, expected_keys, tokenizer = RIVAL_ROWS[name]
    cfg, base = _load(FINETUNE + name), _load(FINETUNE + base_name)
    relative = base_name if base_name.startswith('../') else './' + base_name
    assert f"_base_ = ['{relative}']" in _read(cfg.filename)  # really its base
    ours, theirs = (_flatten(_without_scene_segments(c.to_dict())) for c in (cfg, base))
    diff = {k for k in set(ours) | set(theirs) if ours.get(k, '<absent>') != theirs.get(k, '<absent>')}
    assert diff == expected_keys, sorted(diff ^ expected_keys)

    backbone = cfg.model.backbone
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=CHECKPOINT[method], prefix='backbone.')
    segments_in_base = 'LoadSceneSegments' in _transform_types(_dataloaders(base))
    assert 'LoadSceneSegments' not in _transform_types(_dataloaders(cfg))  # no rival config needs scene segments
    if tokenizer is None:
        assert backbone.tokenizer == base.model.backbone.tokenizer and not segments_in_base
        return
    # SAM-guided tokens (from the scene-segment column) replaced by FPS/kNN tokens on the same points.
    assert base.model.backbone.tokenizer.type == 'SAMGuidedTokenizer' and segments_in_base
    assert backbone.tokenizer == tokenizer
    assert backbone.in_channels == base.model.backbone.in_channels - 1 and backbone.segment_channel is None
    assert backbone.num_output_tokens == tokenizer['num_tokens']


def test_rival_checkpoints_name_the_pretraining_configs():
    """tools/train.py saves under work_dirs/<config name>/: both pretraining configs are in this repository."""
    shared = _load('configs/sam_mtp/_base_/models/sam-mtp-point-backbone.py')
    assert shared.point_mae_checkpoint == CHECKPOINT['point-mae']
    assert shared.bridge3d_checkpoint == CHECKPOINT['bridge3d']
    for method in ('point-mae', 'bridge3d'):
        name = CHECKPOINT[method].split('/')[1]
        assert osp.isfile(osp.join(REPO, 'configs', 'sam_mtp', 'pretrain', name + '.py')), method


# ------------------------------------------------------------------------------------------------ docs table
def _docs_rows():
    """(table, row, dataset, config, numbers) of the markdown table under the heading 'Paper rows -> configs'."""
    lines = _read(DOCS).splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r'#+ Paper rows -> configs\s*$', line))
    table = []
    for line in lines[start + 1:]:
        if line.startswith('#'):
            break
        if line.startswith('|'):
            table.append([cell.strip() for cell in line.strip().strip('|').split('|')])
        elif table:
            break  # the table ended
    header, rule, body = table[0], table[1], table[2:]
    assert header == ['Paper table', 'Paper row', 'Dataset', 'Config', 'Paper numbers'] and set(rule) == {'---'}
    return body


def _config_file(cell):
    match = re.fullmatch(r'`([^`]+)`', cell)
    assert match, f'config cell {cell!r} is not one `path`'
    path = match.group(1)
    if path.startswith('mmdet3d::'):
        import mmdet3d
        return osp.join(osp.dirname(mmdet3d.__file__), '.mim', 'configs', path[len('mmdet3d::'):])
    return osp.join(REPO, path)


def _paper_row_configs():
    """Every config of the repository whose header comment names a row of the paper's Table 1 or 2."""
    found = set()
    for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True):
        header = []
        for line in _read(path).splitlines():
            if not line.startswith('#'):
                break
            header.append(line[1:].strip())
        if re.search(r'paper Table [12]\b', ' '.join(header)):
            found.add(osp.relpath(path, REPO))
    return found


def test_docs_table_names_existing_configs_of_the_right_row():
    rows = _docs_rows()
    assert len(rows) == len({(t, r, d) for t, r, d, _, _ in rows})  # one config per paper cell
    for table, row, dataset, config, _ in rows:
        path = _config_file(config)
        assert osp.isfile(path), f'{config}: no such config'
        name = osp.basename(path)
        assert DATASET_IN_NAME[dataset] in name, (row, dataset, config)
        method = [m for m in METHOD_IN_NAME if row.endswith(' ' + m)]
        if method:
            assert METHOD_IN_NAME[method[0]] in name, (row, config)
        elif row.endswith('+Plain Transformer') or row == 'Plain Transformer':
            assert '_plain-transformer_' in name or '_plain-transformer-sam-tokens_' in name, (row, config)
            assert Config.fromfile(path).model.backbone.get('init_cfg') is None, (row, config)  # not pretrained
        if not config.startswith('`mmdet3d::'):
            header = _read(path).split('\n_base_')[0]
            assert f'paper {table}' in ' '.join(line.lstrip('# ') for line in header.splitlines()), (table, config)


def test_docs_table_covers_every_paper_row_config():
    documented = {osp.relpath(_config_file(c), REPO) for _, _, _, c, _ in _docs_rows()
                  if not c.startswith('`mmdet3d::')}
    assert _paper_row_configs() <= documented, sorted(_paper_row_configs() - documented)
    assert {FINETUNE + name for name in RIVAL_ROWS} <= documented
    assert len(_paper_row_configs()) >= 27  # 15 before the rival rows, 12 of them


def test_docs_table_quotes_the_papers_numbers():
    rows = _docs_rows()
    assert {(t, r, d) for t, r, d, _, _ in rows} == set(PAPER)
    for table, row, dataset, _, cell in rows:
        expected = PAPER[(table, row, dataset)]
        if expected is None:
            assert cell == 'not given', (row, dataset, cell)
            continue
        match = re.fullmatch(r'(\d+\.\d)( \(\+(\d+\.\d)\))? / (\d+\.\d)( \(\+(\d+\.\d)\))?', cell)
        assert match, (row, dataset, cell)
        assert (float(match.group(1)), float(match.group(4))) == expected, (row, dataset, cell)
        gains = (match.group(3), match.group(6))
        if row.endswith('+Ours'):  # the paper's gain over "+Bridge3D" of the same detector and dataset
            rival = PAPER[(table, row.replace('+Ours', '+Bridge3D'), dataset)]
            assert tuple(float(g) for g in gains) == tuple(round(o - b, 1) for o, b in zip(expected, rival)), cell
        else:
            assert gains == (None, None), cell


# ------------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture(scope='module')
def point_mae_demo_checkpoint(tmp_path_factory):
    """configs/sam_mtp/demo/point-mae_plain-transformer_1xb8-30e_synthetic-scannet-frames.py trained one Runner iteration on two synthetic label frames."""
    from mmengine.runner import Runner
    root = tmp_path_factory.mktemp('point_mae_demo')
    cfg = point_mae_one_iteration(_load(POINT_MAE_DEMO), root)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        runner = Runner.from_cfg(cfg)
        runner.train()
    assert runner.iter == 1
    path = str(root / 'work' / 'epoch_1.pth')
    return path, torch.load(path, map_location='cpu', weights_only=False)['state_dict'], cfg.model.backbone


def _at_test_scale(cfg, demo_encoder):
    """The config's model with the demo's encoder widths and few tokens, everything else (init_cfg included) as
    configured: heads that read the encoder width directly take the demo's."""
    model = cfg.model
    width = model.backbone.encoder.embed_dims
    model.backbone.encoder.update({k: v for k, v in demo_encoder.items() if k not in ('type', 'pos_every_block')})
    tokenizer = model.backbone.tokenizer
    tokenizer.update(num_tokens=32, num_points_per_token=8)
    if model.backbone.get('num_output_tokens'):
        model.backbone.num_output_tokens = 32
    for head in ('bbox_head', 'decode_head'):
        if head in model and model[head].get('in_channels') == width:
            model[head].in_channels = demo_encoder['embed_dims']
    return model


@pytest.mark.parametrize('name', sorted(RIVAL_ROWS))
def test_point_mae_demo_checkpoint_loads_strictly_into_the_rival_configs(point_mae_demo_checkpoint, name):
    path, state, demo_encoder = point_mae_demo_checkpoint
    cfg = _load(FINETUNE + name)
    assert cfg.model.backbone.init_cfg.checkpoint == CHECKPOINT[RIVAL_ROWS[name][1]]
    cfg.model.backbone.init_cfg.checkpoint = path  # type and prefix stay the config's
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        model = _at_test_scale(cfg, demo_encoder)
        torch.manual_seed(0)
        model = MODELS.build(model)
        model.init_weights()  # strict: any missing, unknown or mis-shaped encoder key raises
    encoder = model.backbone.encoder.state_dict()
    assert set(encoder) == {k[len('backbone.'):] for k in state if k.startswith('backbone.')}
    for key, value in encoder.items():
        assert torch.equal(value, state['backbone.' + key]), key


def test_loaded_point_mae_encoder_trains_in_the_s3dis_segmentor(point_mae_demo_checkpoint):
    """The "+Point-MAE" S3DIS segmentor at test scale: demo encoder loaded, one loss on a random patch reaches
    the encoder's first layer."""
    path, _, demo_encoder = point_mae_demo_checkpoint
    cfg = _load(FINETUNE + 'tokeninterp_plain-transformer-point-mae_2xb16-50e_s3dis-seg.py')
    cfg.model.backbone.init_cfg.checkpoint = path
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        torch.manual_seed(0)
        model = MODELS.build(_at_test_scale(cfg, demo_encoder))
        model.init_weights()
    gen = torch.Generator().manual_seed(0)
    points = torch.rand(512, 9, generator=gen)  # xyz, rgb, normalised xyz
    segmentation_loss_backward(model, points, 13, gen)
    first = next(p for n, p in model.backbone.encoder.named_parameters() if p.requires_grad)
    assert first.grad is not None and first.grad.abs().sum() > 0
