"""Dump every config's resolved dict to JSON, and compare two dumps through a rename table: the check that a
config rename or a `_base_` restructuring changed no value (docs/configs.md, "Renames").

    python dev/dump_configs.py dump OUT_DIR [configs ...]     # OUT_DIR/<config path>.json, one per config
    python dev/dump_configs.py compare BEFORE AFTER [--renames docs/configs.md]

`compare` pairs each old path with its new one through the old -> new table of docs/configs.md (paths missing
from the table keep their name) and sorts what differs into:
- run keys (what mmengine's Runner or a tool reads; every key of a config without a model): printed in full;
  "equal" when none differs. Two spellings of one value are normalised first and counted: `_scope_` equal to the
  config's default_scope (the transform is built in that scope either way), and a CosineAnnealingLR without
  end / T_max (the Runner sets end = train_cfg.max_epochs, and T_max = end - begin).
- helper keys (other top-level names of a training config: the bases' presets, e.g. det_sam_tokenizer): listed
  by name as added / removed / changed.
It also steps every config's learning-rate schedule as the Runner would (3 iterations per epoch) and says whether
the learning rate of every iteration is the same before and after.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Keys that follow the config's file name, not its content.
NAME_KEYS = ('work_dir', 'filename')


def tag_tuples(node):
    """``node`` with every tuple written as {'__tuple__': [...]}: JSON has no tuples, and a transform may treat a
    tuple and a list differently (mmdet3d's MultiScaleFlipAug3D does)."""
    if isinstance(node, dict):
        return {k: tag_tuples(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        items = [tag_tuples(v) for v in node]
        return {'__tuple__': items} if isinstance(node, tuple) else items
    return node


def dump(out_dir, paths):
    from mmengine.config import Config
    sys.path.insert(0, REPO)
    paths = paths or sorted(
        osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
        if f'{os.sep}_base_{os.sep}' not in p)
    for rel in paths:
        cfg = Config.fromfile(osp.join(REPO, rel)).to_dict()
        for key in NAME_KEYS:
            cfg.pop(key, None)
        target = osp.join(out_dir, rel + '.json')
        os.makedirs(osp.dirname(target), exist_ok=True)
        with open(target, 'w') as f:
            json.dump(tag_tuples(cfg), f, indent=1, sort_keys=True, default=repr)
        print('dumped', rel)


def renames(table_path):
    """old -> new config paths from the `| old | new |` table rows of ``table_path`` (first path of each cell)."""
    pairs = {}
    for line in open(table_path):
        cells = [re.findall(r'`(configs/[^`]+\.py)`', cell) for cell in line.split('|')[1:3]]
        if line.startswith('|') and len(cells) == 2 and all(cells):
            pairs[cells[0][0]] = cells[1][0]
    return pairs


# Top-level keys that mmengine's Runner (Runner.from_cfg) or the project's tools read from a training config.
RUN_KEYS = {'model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg',
            'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator', 'default_hooks',
            'custom_hooks', 'data_preprocessor', 'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor',
            'log_level', 'visualizer', 'default_scope', 'randomness', 'experiment_name', 'model_wrapper_cfg',
            'custom_imports', 'work_dir'}


def normalise(cfg):
    """``cfg`` with the two spellings of one value made one (see the module doc); returns (cfg, what changed)."""
    notes = set()
    scope = cfg.get('default_scope')

    def strip_scope(node):
        if isinstance(node, dict):
            if scope is not None and node.get('_scope_') == scope:
                notes.add(f'_scope_={scope!r} dropped')
                node = {k: v for k, v in node.items() if k != '_scope_'}
            return {k: strip_scope(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip_scope(v) for v in node]
        return node

    cfg = strip_scope(cfg)
    for sched in cfg.get('param_scheduler') or []:
        if sched.get('type') == 'CosineAnnealingLR' and sched.get('by_epoch', True):
            if 'end' not in sched:
                sched['end'] = cfg['train_cfg']['max_epochs']
                notes.add('cosine end = max_epochs filled in')
            if sched.get('T_max') is None:
                sched['T_max'] = sched['end'] - sched.get('begin', 0)
                notes.add('cosine T_max = end - begin filled in')
    return cfg, notes


def lr_curve(cfg, epoch_length=3):
    """The learning rate of every iteration of ``cfg``'s schedule, built as mmengine's Runner builds it."""
    import mmengine.optim  # noqa: F401  (registers the schedulers)
    import torch
    from mmengine.registry import PARAM_SCHEDULERS
    if not cfg.get('param_scheduler') or 'optim_wrapper' not in cfg:
        return None
    lr = cfg['optim_wrapper'].get('optimizer', {}).get('lr', 1.0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    max_epochs = cfg['train_cfg']['max_epochs']
    schedulers = []
    for sched in cfg['param_scheduler']:
        sched = dict(sched)
        sched.pop('_scope_', None)
        sched.setdefault('end', max_epochs)  # Runner.build_param_scheduler's default end
        schedulers.append(PARAM_SCHEDULERS.build(sched, default_args=dict(optimizer=optimizer,
                                                                          epoch_length=epoch_length)))
    curve = []
    for step in range(max_epochs * epoch_length):
        curve.append(optimizer.param_groups[0]['lr'])
        for scheduler in schedulers:
            if not scheduler.by_epoch:
                scheduler.step()
        if (step + 1) % epoch_length == 0:
            for scheduler in schedulers:
                if scheduler.by_epoch:
                    scheduler.step()
    return curve


def diff(a, b, where=''):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                yield f'{where}.{key}: only in {"after" if key in b else "before"}'
            else:
                yield from diff(a[key], b[key], f'{where}.{key}')
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from diff(x, y, f'{where}[{i}]')
    elif a != b:
        yield f'{where}: {a!r} -> {b!r}'


def compare(before, after, table):
    mapping = renames(table)
    olds = sorted(osp.relpath(p, before)[:-len('.json')]
                  for p in glob.glob(osp.join(before, '**', '*.json'), recursive=True))
    unmatched = {osp.relpath(p, after)[:-len('.json')]
                 for p in glob.glob(osp.join(after, '**', '*.json'), recursive=True)}
    for old in olds:
        new = mapping.get(old, old)
        if not osp.isfile(osp.join(after, new + '.json')):
            print(f'{old} -> {new}: MISSING after')
            continue
        unmatched.discard(new)
        a, b = (json.load(open(osp.join(root, name + '.json'))) for root, name in ((before, old), (after, new)))
        training = 'model' in a or 'model' in b
        run = [k for k in set(a) | set(b) if not training or k in RUN_KEYS]
        (na, notes_a), (nb, notes_b) = normalise(a), normalise(b)
        raw = list(diff({k: a[k] for k in run if k in a}, {k: b[k] for k in run if k in b}))
        lines = list(diff({k: na[k] for k in run if k in na}, {k: nb[k] for k in run if k in nb}))
        helpers = sorted((set(a) | set(b)) - set(run))
        added = [k for k in helpers if k not in a]
        removed = [k for k in helpers if k not in b]
        changed = [k for k in helpers if k in a and k in b and na[k] != nb[k]]
        curves = (lr_curve(a), lr_curve(b)) if training else (None, None)  # as written, not normalised
        print(f'{old} -> {new}')
        print('    run keys: ' + ('equal' if not lines else f'{len(lines)} differences'))
        for line in lines:
            print('       ', line)
        if len(raw) != len(lines):
            print(f'    + {len(raw) - len(lines)} differences of spelling only; normalised: before: '
                  f'{sorted(notes_a) or "-"}, after: {sorted(notes_b) or "-"}')
        if curves[0] is not None or curves[1] is not None:
            print('    lr of every iteration: ' + ('equal' if curves[0] == curves[1] else 'DIFFERENT') +
                  f' ({len(curves[0] or [])} iterations)')
        if added or removed or changed:
            print(f'    helper keys: added {added}, removed {removed}, changed {changed}')
    for new in sorted(unmatched):
        print(f'(new) {new}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    p_dump = sub.add_parser('dump')
    p_dump.add_argument('out_dir')
    p_dump.add_argument('configs', nargs='*')
    p_cmp = sub.add_parser('compare')
    p_cmp.add_argument('before')
    p_cmp.add_argument('after')
    p_cmp.add_argument('--renames', default=osp.join(REPO, 'docs', 'configs.md'))
    args = parser.parse_args()
    if args.command == 'dump':
        dump(args.out_dir, args.configs)
    else:
        compare(args.before, args.after, args.renames)


if __name__ == '__main__':
    main()
