"""Longest `_base_` chain of the project's configs: follows `_base_` recursively (mmdet3d:: bases included) and
prints the configs with the longest path to a root (number of files on it, the config included) and the configs
that read the most files in all (every file of the `_base_` graph, the config included).

    python dev/config_chain.py [--top 5] [configs ...]
"""
import argparse
import ast
import glob
import os.path as osp

from mmengine.config.utils import _get_package_and_cfg_path
from mmengine.utils import get_installed_path

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def bases(path):
    """The files named by `_base_` in the config at ``path`` (a str or a list of str), resolved to paths."""
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '_base_' for t in node.targets):
            names = ast.literal_eval(node.value)
            for name in [names] if isinstance(names, str) else names:
                if '::' in name:
                    package, rel = _get_package_and_cfg_path(name)
                    root = get_installed_path(package)
                    mim = osp.join(root, '.mim', 'configs', rel)
                    yield mim if osp.isfile(mim) else osp.join(root, 'configs', rel)
                else:
                    yield osp.normpath(osp.join(osp.dirname(path), name))
    return


def longest_chain(path, memo):
    """The longest list of files from ``path`` through `_base_` links to a config without a `_base_`."""
    if path not in memo:
        chains = [longest_chain(base, memo) for base in bases(path)]
        memo[path] = [path] + max(chains, key=len, default=[])
    return memo[path]


def closure(path, memo):
    """Every file that loading ``path`` reads: itself and its bases, recursively."""
    if path not in memo:
        memo[path] = {path}.union(*(closure(base, memo) for base in bases(path)))
    return memo[path]


def _short(path):
    return osp.relpath(path, REPO) if path.startswith(REPO) else 'mmdet3d::' + path.split('configs' + osp.sep, 1)[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='*', help='config files (default: every .py under configs/)')
    parser.add_argument('--top', type=int, default=5, help='how many of the longest chains to print')
    args = parser.parse_args()
    paths = args.configs or sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))
    chain_memo, closure_memo = {}, {}
    chains = sorted((longest_chain(osp.abspath(p), chain_memo) for p in paths), key=len, reverse=True)
    print('longest _base_ path (files):')
    for chain in chains[:args.top]:
        print(f'  {len(chain)}: ' + ' -> '.join(_short(p) for p in chain))
    sizes = sorted(((len(closure(osp.abspath(p), closure_memo)), p) for p in paths), reverse=True)
    print('files read in all:')
    for size, path in sizes[:args.top]:
        print(f'  {size}: {_short(osp.abspath(path))}')


if __name__ == '__main__':
    main()
