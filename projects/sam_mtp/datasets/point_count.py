"""Warn when a dataset's scenes hold far more points than the recipe of the config assumes.

3DETR's data (VoteNet's ScanNet and SUN RGB-D exports) holds 50,000 points per scene, and its augmentation
assumes it: ``RandomCuboidCrop(min_points=30000)`` accepts a crop holding 30k points, i.e. 60 % of a scene.
mmdet3d's ScanNet export keeps every mesh vertex (about 150k per scene) unless it runs with
``--max_num_point 50000``; on such data the same crops cover a fifth of a room and the sampled points are
sparser, silently another recipe. The check runs in the main process before the first iteration, from the
points files' sizes alone (no file is read), once per dataset.
"""
import logging
import os.path as osp
from typing import Iterator, List, Optional, Tuple

from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log

__all__ = ['ScenePointCountHook', 'scene_point_counts']


def _leaf_datasets(dataset) -> Iterator:
    """The datasets below wrappers (RepeatDataset, ClassBalancedDataset: ``.dataset``; ConcatDataset:
    ``.datasets``)."""
    if hasattr(dataset, 'datasets'):
        for child in dataset.datasets:
            yield from _leaf_datasets(child)
    elif hasattr(dataset, 'dataset'):
        yield from _leaf_datasets(dataset.dataset)
    else:
        yield dataset


def _load_dim(dataset) -> Optional[int]:
    """Columns per point of the points files: ``load_dim`` of the pipeline's ``LoadPointsFromFile``."""
    for transform in getattr(getattr(dataset, 'pipeline', None), 'transforms', []):
        if type(transform).__name__ == 'LoadPointsFromFile':
            return transform.load_dim
    return None


def scene_point_counts(dataset) -> List[Tuple[str, int]]:
    """``(points file, number of points)`` of every local float32 points file of an mmdet3d dataset.

    The count is the file size over ``4 * load_dim``; files that are not local (another file backend) or do
    not exist are left out (their loading reports them).
    """
    load_dim = _load_dim(dataset)
    if not load_dim or not hasattr(dataset, 'get_data_info'):
        return []
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    counts = []
    for index in range(len(dataset)):
        path = (dataset.get_data_info(index).get('lidar_points') or {}).get('lidar_path')
        if isinstance(path, str) and osp.isfile(path):
            counts.append((path, osp.getsize(path) // (4 * load_dim)))
    return counts


@HOOKS.register_module()
class ScenePointCountHook(Hook):
    """Warn, once per dataset, when scenes hold more than ``max_ratio`` times ``expected_points`` points.

    The warning names the dataset's info file, the largest scene and its point count, and how many scenes are
    over the limit. The train dataset is checked before training, the val/test datasets before their first
    loop; nothing else changes.

    Args:
        expected_points (int): points per scene the recipe assumes (its data's export).
        max_ratio (float): warn above ``max_ratio * expected_points`` points. Default 2.
        hint (str): what to do about it, appended to the warning.
    """

    priority = 'VERY_LOW'

    def __init__(self, expected_points: int, max_ratio: float = 2.0, hint: str = '') -> None:
        if expected_points < 1 or max_ratio <= 0:
            raise ValueError(f'ScenePointCountHook: expected_points must be >= 1 and max_ratio > 0, got '
                             f'{expected_points} and {max_ratio}')
        self.expected_points = expected_points
        self.max_ratio = max_ratio
        self.hint = hint
        self._checked = set()  # ids of the datasets already checked

    def check(self, dataset) -> Optional[str]:
        """Check every leaf dataset of ``dataset`` not checked before; returns the last warning, if any."""
        message = None
        limit = self.max_ratio * self.expected_points
        for leaf in _leaf_datasets(dataset):
            if id(leaf) in self._checked:
                continue
            self._checked.add(id(leaf))
            over = [(count, path) for path, count in scene_point_counts(leaf) if count > limit]
            if not over:
                continue
            count, path = max(over)
            scene = osp.splitext(osp.basename(path))[0]
            message = (f'{type(leaf).__name__} ({getattr(leaf, "ann_file", "?")}): scene {scene} has {count} '
                       f'points, more than {self.max_ratio:g}x the {self.expected_points} per scene this recipe '
                       f'assumes ({len(over)} scene(s) over {int(limit)}); crops and sampling then act on '
                       f'denser scenes than the reference\'s.' + (f' {self.hint}' if self.hint else ''))
            print_log(message, logger='current', level=logging.WARNING)
        return message

    def before_train(self, runner) -> None:
        self.check(runner.train_dataloader.dataset)

    def before_val(self, runner) -> None:
        self.check(runner.val_loop.dataloader.dataset)

    def before_test(self, runner) -> None:
        self.check(runner.test_loop.dataloader.dataset)
