"""The config spine (docs/configs.md): every config path the README and docs name exists, every training config is
named by the rule and its name's GPUs x batch and epochs are the config's, no config splices a pipeline, and the
encoder and the warm-up + cosine schedule are written once and inherited."""
import ast
import functools
import glob
import os.path as osp
import re

import pytest
from helpers.paths import expand
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs', 'sam_mtp')
DOCS = [osp.join(REPO, 'README.md')] + sorted(glob.glob(osp.join(REPO, 'docs', '*.md')))
RENAMES = osp.join(REPO, 'docs', 'configs.md')
# {algorithm}_{backbone}_{N}xb{B}-{E}e_{dataset}-{task}.py (docs/configs.md, "Names").
NAME = re.compile(r'^(?P<algorithm>[a-z0-9]+(?:-[a-zA-Z0-9]+)*)_(?P<backbone>[a-z0-9]+(?:-[a-z0-9]+)*)_'
                  r'(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<epochs>\d+)e_(?P<dataset>[a-z0-9]+(?:-[a-z0-9]+)*)-'
                  r'(?P<task>3d|seg|frames)\.py$')
TRAINING_FOLDERS = ('pretrain', 'benchmarks', 'ablations', 'demo')
STAGE1 = 'pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py'
STAGE2 = 'pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py'
# The documented exception: the backbone swap restates everything so that it inherits only mmdet3d's config.
SWAP = 'benchmarks/groupfree3d_plain-transformer-sam-mtp-swap_4xb8-80e_scannet-3d.py'


@functools.lru_cache(maxsize=None)
def load(rel):
    return Config.fromfile(osp.join(CONFIGS, rel))


def config_files(folders=None):
    """Paths relative to configs/sam_mtp/ of the configs (not bases) in ``folders`` (default: all)."""
    paths = glob.glob(osp.join(CONFIGS, '*', '*.py'))
    return sorted(osp.relpath(p, CONFIGS) for p in paths if osp.basename(osp.dirname(p)) != '_base_' and
                  (folders is None or osp.basename(osp.dirname(p)) in folders))


# ------------------------------------------------------------------------------------------------ doc paths
def old_column_lines(text):
    """Lines of the renames table (``| `old` | `new` |``), whose first column names paths that are gone."""
    return {line for line in text.splitlines() if line.startswith('| `configs/') and line.count('`configs/') >= 2}


def doc_config_paths():
    """(doc, path) for every configs/...py path in README.md and docs/*.md, the renames table's old column aside."""
    found = []
    for doc in DOCS:
        text = open(doc).read()
        skip = old_column_lines(text) if doc == RENAMES else set()
        for line in text.splitlines():
            if line in skip:
                line = '|'.join(line.split('|')[2:])  # the new column and the rest stay checked
            for path in re.findall(r'configs/[\w./{},*-]*\.py', line):
                found.append((osp.relpath(doc, REPO), path))
    return found


def test_expand_writes_out_alternatives():
    assert expand('a/{x,y}_b-{1,2}.py') == ['a/x_b-1.py', 'a/x_b-2.py', 'a/y_b-1.py', 'a/y_b-2.py']
    assert expand('a/b.py') == ['a/b.py']


def test_every_config_path_in_readme_and_docs_exists():
    found = doc_config_paths()
    assert len(found) > 50  # the docs do name configs
    missing = [(doc, path) for doc, path in found
               if not all(glob.glob(osp.join(REPO, p)) for p in expand(path))]
    assert not missing, missing


def test_the_renames_table_names_each_old_path_once_and_only_new_paths_that_exist():
    text = open(RENAMES).read()
    rows = [re.findall(r'`(configs/[^`]+\.py)`', line) for line in old_column_lines(text)]
    olds = [row[0] for row in rows]
    assert len(rows) >= 49 and len(olds) == len(set(olds))
    for old, *new in rows:
        assert not osp.exists(osp.join(REPO, old)), f'{old} is still there'
        assert new and all(osp.isfile(osp.join(REPO, p)) for p in new), (old, new)


def test_no_doc_names_a_renamed_config_by_its_old_file_name():
    """Bare file names count too (`stage1_scannet.py`), except where the old name is still some file's name."""
    current = {osp.basename(p) for p in glob.glob(osp.join(REPO, '**', '*.py'), recursive=True)}
    olds = {osp.basename(re.findall(r'`(configs/[^`]+\.py)`', line)[0])
            for line in old_column_lines(open(RENAMES).read())} - current
    assert 'stage1_scannet.py' in olds
    for doc in DOCS:
        text = open(doc).read()
        if doc == RENAMES:
            text = '\n'.join(line for line in text.splitlines() if line not in old_column_lines(text))
        named = {name for name in olds if re.search(r'(?<![\w-])' + re.escape(name), text)}
        assert not named, f'{osp.relpath(doc, REPO)} names {sorted(named)}'


# ---------------------------------------------------------------------------------------------------- names
def test_the_name_rule_accepts_and_rejects():
    assert NAME.match('sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py').group('batch') == '16'
    assert NAME.match('groupfree3d_plain-transformer-sam-mtp_4xb8-80e_sunrgbd-3d.py').group('epochs') == '80'
    for bad in ('stage1_scannet.py', '3detr_sam-mtp-ft_scannet-3d.py', 'threedetr_1xb8-1080e_scannet-3d.py',
                'threedetr_vanilla-encoder_1xb8_scannet-3d.py', 'tokenseg_scratch_s3dis-seg.py',
                'threedetr_vanilla-encoder_1xb8-1080e_scannet.py'):
        assert not NAME.match(bad), bad


def test_training_configs_are_named_by_the_rule_and_their_names_are_true():
    """Every config with a model lives in a training folder and is named {algorithm}_{backbone}_{N}xb{B}-{E}e_
    {dataset}-{task}.py with B its batch per GPU, E its epochs and (at paper scale) N x B its reference batch."""
    trained = config_files(TRAINING_FOLDERS)
    assert len(trained) >= 45
    assert not [rel for rel in config_files() if rel not in trained and 'model' in load(rel)]
    for rel in trained:
        match = NAME.match(osp.basename(rel))
        assert match, f'{rel}: not {NAME.pattern}'
        assert '3detr' not in rel and 'tokenseg' not in rel, rel  # threedetr, tokeninterp: one name each
        cfg = load(rel)
        batch, epochs, gpus = (int(match.group(k)) for k in ('batch', 'epochs', 'gpus'))
        assert cfg.train_dataloader.batch_size == batch, rel
        assert cfg.train_cfg.max_epochs == epochs, rel
        if not rel.startswith('demo/'):  # the CPU demo runs on one process whatever the recipe's reference
            assert cfg.auto_scale_lr.base_batch_size == gpus * batch, rel


# ------------------------------------------------------------------------------------------------ pipelines
def pipeline_splices(source):
    """Line numbers where ``source`` (a config's text) builds a pipeline out of another one: an index or slice
    of a name ending in ``pipeline``, or a comprehension over one."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        target = node.value if isinstance(node, ast.Subscript) else \
            node.iter if isinstance(node, ast.comprehension) else None
        name = getattr(target, 'attr', None) or getattr(target, 'id', None)
        if name and name.endswith('pipeline'):
            lines.append(target.lineno)
    return lines


def test_the_splice_check_finds_splices():
    assert pipeline_splices("p = _base_.train_pipeline[:1] + [dict(type='X')] + _base_.train_pipeline[1:]") == [1, 1]
    assert pipeline_splices("t = [s for s in _base_.test_pipeline if s['type'] != 'X']") == [1]
    assert pipeline_splices("p = base_pipeline[-1]") == [1]
    assert pipeline_splices("p = _base_.segments_train_pipeline\nq = _base_.lr_warmup['end']") == []


def test_no_config_splices_a_pipeline():
    files = glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
    found = {osp.relpath(p, REPO): pipeline_splices(open(p).read()) for p in files}
    assert not {k: v for k, v in found.items() if v}


def _without(pipeline, *types):
    return [dict(t) for t in pipeline if t['type'] not in types]


def _plain(node):
    """``node`` without mmengine's ``_scope_`` marks and with tuples as lists: mmengine marks the dicts of an
    ``mmdet3d::`` base with their scope and hands some of their tuples over as lists."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items() if k != '_scope_'}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


@pytest.mark.parametrize('base, points', [
    ('scannet-3d_threedetr.py', ('train_pipeline', 'test_pipeline')),
    ('sunrgbd-3d_threedetr.py', ('train_pipeline', 'test_pipeline')),
    ('scannet-3d_groupfree3d.py', ('points_train_pipeline', 'points_test_pipeline')),
    ('sunrgbd-3d_groupfree3d.py', ('points_train_pipeline', 'points_test_pipeline')),
    ('scannet-seg_tokeninterp.py', ('points_train_pipeline', 'points_test_pipeline')),
    ('s3dis-seg_tokeninterp.py', ('points_train_pipeline', 'points_test_pipeline')),
])
def test_segment_pipelines_are_the_point_pipelines_with_the_segments_loaded_after_the_points(base, points):
    cfg = load(osp.join('_base_', 'datasets', base))
    for phase, name in zip(('train', 'test'), points):
        segments = cfg[f'segments_{phase}_pipeline']
        assert [t['type'] for t in segments[:2]] == ['LoadPointsFromFile', 'LoadSceneSegments'], base
        assert _without(segments, 'LoadSceneSegments') == cfg[name], (base, phase)


@pytest.mark.parametrize('base, stock', [
    ('scannet-3d_groupfree3d.py', 'mmdet3d::groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py'),
    ('sunrgbd-3d_groupfree3d.py', 'mmdet3d::_base_/datasets/sunrgbd-3d.py'),
    ('scannet-seg_tokeninterp.py', 'mmdet3d::_base_/datasets/scannet-seg.py'),
    ('s3dis-seg_tokeninterp.py', 'mmdet3d::_base_/datasets/s3dis-seg.py'),
])
def test_point_pipelines_restate_the_stock_ones(base, stock, tmp_path):
    """The bases beside a stock mmdet3d config restate its pipelines; the segmentation test pipeline also maps
    the labels (PointSegClassMapping right after the annotations, which the stock ScanNet one lacks)."""
    cfg = load(osp.join('_base_', 'datasets', base))
    child = tmp_path / 'stock.py'
    child.write_text(f"_base_ = ['{stock}']\n")
    reference = Config.fromfile(str(child))
    train, test = (reference[f'{phase}_dataloader'].dataset for phase in ('train', 'test'))
    # (the detection train sets are RepeatDatasets)
    assert _plain(cfg.points_train_pipeline) == _plain(train.get('dataset', train).pipeline)
    test = _plain(test.pipeline)
    if base.endswith('-seg_tokeninterp.py'):
        assert [t['type'] for t in cfg.points_test_pipeline[1:3]] == ['LoadAnnotations3D', 'PointSegClassMapping']
        test.insert(2, dict(type='PointSegClassMapping'))
    assert _plain(cfg.points_test_pipeline) == test


def test_sam_token_configs_train_and_test_on_the_segment_pipelines():
    """A backbone with a segment column reads a pipeline that loads the segments, and a backbone without one a
    pipeline that does not."""
    checked = 0
    for rel in config_files(TRAINING_FOLDERS):
        cfg = load(rel)
        if cfg.model.backbone.type != 'SamMtpPointBackbone':
            continue
        with_segments = cfg.model.backbone.get('segment_channel') is not None
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            dataset = cfg[loader].dataset
            types = [t['type'] for t in dataset.get('dataset', dataset).pipeline]
            assert ('LoadSceneSegments' in types) == with_segments, (rel, loader)
        checked += 1
    assert checked >= 20


# ------------------------------------------------------------------------------------------ encoder, schedule
def test_encoder_settings_resolve_from_the_one_base():
    encoder = load('_base_/models/plain-point-transformer.py').plain_point_transformer
    assert encoder == dict(type='PlainPointTransformer', embed_dims=256, num_layers=3, num_heads=4, mlp_ratio=2.,
                           drop_path_rate=0.1)
    stage1, stage2 = load(STAGE1), load(STAGE2)
    assert stage1.model.backbone == encoder
    assert stage2.model.backbone == encoder and stage2.model.teacher.backbone == encoder
    for rel in ('pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py',
                'pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py'):
        assert load(rel).model.backbone == encoder, rel
    finetune = load('_base_/models/sam-mtp-point-backbone.py').sam_mtp_encoder
    assert finetune == dict(encoder, pos_every_block=True)
    paper_scale = [rel for rel in config_files(('benchmarks', 'ablations'))
                   if load(rel).model.backbone.type == 'SamMtpPointBackbone']
    assert len(paper_scale) >= 17
    for rel in paper_scale:
        fine = dict(load(rel).model.backbone.encoder)
        assert fine.pop('pos_every_block') is ('threedetr' not in rel), rel  # 3DETR adds the centre embedding once
        assert fine == encoder, rel


def test_the_encoder_and_the_schedule_are_written_once():
    """Inherited, not restated: the encoder's and the scheduler's types appear in one config file each (and in the
    backbone swap, which restates everything by design)."""
    files = [p for p in glob.glob(osp.join(CONFIGS, '**', '*.py'), recursive=True)
             if osp.relpath(p, CONFIGS) != SWAP]
    for word, home in (('PlainPointTransformer', '_base_/models/plain-point-transformer.py'),
                       ('LinearLR', '_base_/schedules/warmup-cosine.py'),
                       ('CosineAnnealingLR', '_base_/schedules/warmup-cosine.py')):
        assert [osp.relpath(p, CONFIGS) for p in files if f"'{word}'" in open(p).read()] == [home], word


@pytest.mark.parametrize('rel, warmup_end, start_factor, eta_min', [
    (STAGE1, 10, 1e-3, 1e-6),
    ('pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py', 10, 2e-3, 1e-6),
    ('benchmarks/threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py', 9, 1e-6 / 5e-4, 1e-6),
    ('benchmarks/threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py', 9, 1e-6 / 7e-4, 1e-6),
    ('benchmarks/tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py', 5, 1e-3, 1e-6),
    ('demo/sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py', 1, 1e-2, 1e-5),
])
def test_warmup_cosine_configs_keep_their_recipe(rel, warmup_end, start_factor, eta_min):
    warmup, cosine = load(rel).param_scheduler
    assert (warmup.type, warmup.begin, warmup.end, warmup.by_epoch) == ('LinearLR', 0, warmup_end, True)
    assert warmup.start_factor == pytest.approx(start_factor)
    assert (cosine.type, cosine.begin, cosine.eta_min) == ('CosineAnnealingLR', warmup_end, eta_min)
    assert warmup.convert_to_iter_based and cosine.convert_to_iter_based and cosine.by_epoch


def test_every_cosine_runs_from_the_end_of_warm_up_to_max_epochs():
    """Classic configs do not re-evaluate derived values: a config that changes max_epochs must compose its schedule
    again. Every cosine starts where the warm-up ends (or at 0) and ends, with T_max = end - begin, at
    train_cfg.max_epochs."""
    checked = []
    for rel in config_files(TRAINING_FOLDERS):
        cfg = load(rel)
        schedulers = {s['type']: s for s in cfg.get('param_scheduler') or []}
        if 'CosineAnnealingLR' in schedulers:
            cosine = schedulers['CosineAnnealingLR']
            begin = schedulers['LinearLR'].end if 'LinearLR' in schedulers else 0  # mmdet3d's PointNet++: none
            assert cosine.get('begin', 0) == begin and cosine.end == cfg.train_cfg.max_epochs, rel
            assert cosine.T_max == cosine.end - begin, rel
            checked.append(rel)
    assert len(checked) >= 35
