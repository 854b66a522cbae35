"""Pretraining configs cut to one CPU epoch on a few synthetic label frames, for the tests that train a Runner."""
import numpy as np

from helpers.labels import make_frame_arrays, write_label_split


def one_epoch(cfg, data_root, work_dir, batch_size=2):
    """``cfg`` set to train one epoch on the label split in ``data_root``, ``batch_size`` frames a batch, and to
    save it as ``work_dir``/epoch_1.pth."""
    cfg.train_dataloader.batch_size = batch_size
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = work_dir
    return cfg


def one_logged_epoch(cfg, data_root, work_dir, num_points=128):
    """:func:`one_epoch` on ``num_points`` points a frame, at a constant learning rate, logging every step."""
    one_epoch(cfg, data_root, work_dir)
    cfg.train_dataloader.dataset.pipeline[-2].num_points = num_points
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
    cfg.default_hooks.logger.interval = 1
    return cfg


def point_mae_one_iteration(cfg, root):
    """The Point-MAE demo config ``cfg`` set to train one iteration on two synthetic label frames it writes to
    ``root``/labels, saving ``root``/work/epoch_1.pth (``root``: a pathlib.Path)."""
    rng = np.random.default_rng(0)
    frames = [make_frame_arrays(rng, (300, 200, 150), 200, feature_dim=64) for _ in range(2)]
    write_label_split(str(root / 'labels'), frames, with_groups=False)  # Point-MAE reads no groups
    one_epoch(cfg, str(root / 'labels') + '/', str(root / 'work'))  # 2 frames, one batch: one iteration
    cfg.randomness = dict(seed=0)  # the demo's deterministic kernels would stay switched on for later tests
    return cfg
