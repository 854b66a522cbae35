"""The documented backbone swap (SWAP, configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp-swap_*.py):
it inherits only mmdet3d's own GroupFree3D ScanNet config, differs from it in exactly the backbone, the segment
loading of every pipeline and one optimizer key, resolves to the paper-row config, and is the config
docs/finetune.md shows. tests/tools/test_paper_row_configs.py trains it one iteration."""
import ast
import os.path as osp
import re

from helpers.configs import flatten as _flatten
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SWAP = osp.join(REPO, 'configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp-swap_4xb8-80e_scannet-3d.py')
ROW = osp.join(REPO, 'configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py')
STOCK_NAME = 'groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py'


def _stock(tmp_path):
    """The stock config inherited the same way (mmengine marks the dicts of an ``mmdet3d::`` base with _scope_)."""
    path = tmp_path / 'stock.py'
    path.write_text(f"_base_ = ['mmdet3d::{STOCK_NAME}']\n")
    return Config.fromfile(str(path))


def _unscoped(node):
    """Flattened, without the _scope_='mmdet3d' marks of dicts inherited from an ``mmdet3d::`` base (the default
    scope of these configs: a restated dict without the mark builds the same)."""
    return {k: v for k, v in _flatten(node).items() if k.rsplit('.', 1)[-1] != '_scope_'}


def _with_segments(pipeline):
    """The stock pipeline with LoadSceneSegments right after LoadPointsFromFile."""
    index = [t['type'] for t in pipeline].index('LoadPointsFromFile')
    return pipeline[:index + 1] + [dict(type='LoadSceneSegments')] + pipeline[index + 1:]


def test_inherits_only_the_stock_mmdet3d_config():
    tree = ast.parse(open(SWAP).read())
    bases = [ast.literal_eval(s.value) for s in tree.body if isinstance(s, ast.Assign) and s.targets[0].id == '_base_']
    assert bases == [[f'mmdet3d::{STOCK_NAME}']]


def test_differs_from_the_stock_config_in_the_backbone_the_segments_and_one_lr_key(tmp_path):
    stock, swap = _stock(tmp_path), Config.fromfile(SWAP)
    # Every pipeline, reached through the train set's RepeatDataset, loads the segments after the points.
    assert stock.train_dataloader.dataset.type == 'RepeatDataset'
    train = stock.train_dataloader.dataset.dataset.pipeline
    assert swap.train_dataloader.dataset.dataset.pipeline == _with_segments(train)
    for loader in ('val_dataloader', 'test_dataloader'):
        assert swap[loader].dataset.pipeline == _with_segments(stock[loader].dataset.pipeline), loader

    # The backbone is complete: SAM-guided tokens on the segment column, sized for the stock head.
    backbone = swap.model.backbone
    use_dim = train[0]['use_dim']
    assert backbone.type == 'SamMtpPointBackbone' and backbone.tokenizer.type == 'SAMGuidedTokenizer'
    assert backbone.segment_channel == len(use_dim) and backbone.in_channels == len(use_dim) + 1
    assert backbone.out_channels == stock.model.bbox_head.in_channels == 288
    assert backbone.num_output_tokens >= backbone.tokenizer.max_tokens >= stock.model.bbox_head.num_proposal
    stage2_checkpoint = 'work_dirs/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames/epoch_120.pth'
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=stage2_checkpoint, prefix='backbone.')
    assert not set(backbone) & set(stock.model.backbone) - {'type', 'in_channels', 'init_cfg'}  # _delete_ worked

    # Nothing else changed: every other leaf of the resolved config equals the stock one.
    flat_stock, flat_swap = _flatten(stock.to_dict()), _flatten(swap.to_dict())
    changed = {k for k in set(flat_stock) | set(flat_swap)
               if flat_stock.get(k, KeyError) != flat_swap.get(k, KeyError)}
    pipelines = re.compile(r'^(train_pipeline|test_pipeline|(train|val|test)_dataloader\.dataset(\.dataset)?\.pipeline)\.')
    expected_other = {'optim_wrapper.paramwise_cfg.custom_keys.backbone.encoder.lr_mult',
                      'optim_wrapper.paramwise_cfg.custom_keys.backbone.encoder.decay_mult',
                      'custom_imports.imports.0', 'custom_imports.allow_failed_imports'}
    other = {k for k in changed if not k.startswith('model.backbone.') and not pipelines.match(k)}
    assert other == expected_other, sorted(other)


def test_resolves_to_the_paper_row_config():
    swap, row = Config.fromfile(SWAP), Config.fromfile(ROW)
    for key in ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'optim_wrapper', 'custom_imports',
                'param_scheduler', 'train_cfg', 'val_evaluator'):
        assert _unscoped(swap.to_dict()[key]) == _unscoped(row.to_dict()[key]), key


def test_docs_show_this_config():
    """docs/finetune.md's swap block is the config (comments aside): the same statements, value for value."""
    docs = open(osp.join(REPO, 'docs', 'finetune.md')).read()
    section = docs[docs.index('## Swapping the backbone into a stock mmdet3d config'):]
    block = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    assert ast.dump(ast.parse(block)) == ast.dump(ast.parse(open(SWAP).read()))
