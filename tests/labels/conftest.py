"""Shared fixtures of the label tests: a tiny synthetic ScanNet root and tiny SAM / ViT checkpoints built from
segment-anything's and mmpretrain's own classes (random weights, saved to temporary files)."""
import os
import shutil

import numpy as np
import pytest
import torch

from projects.sam_mtp.testing import build_tiny_sam, build_tiny_vit


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """Two scenes x 4 frames (ids 0, 25, 50, 75) of 96x72 colour and 64x48 depth, noise-free depth."""
    from projects.sam_mtp.datasets.synthetic import write_synthetic_scannet
    root = str(tmp_path_factory.mktemp('synthetic') / 'scannet')
    write_synthetic_scannet(root, 'train:2', seed=3, points_per_scene=6000, frames_per_scene=4,
                            image_size=(96, 72), depth_size=(64, 48), depth_noise=0.0, depth_dropout=0.0)
    return root


@pytest.fixture
def frames_copy(synthetic_root, tmp_path):
    """A private copy of the synthetic frame folders that a test may damage."""
    dst = str(tmp_path / 'posed_images')
    shutil.copytree(os.path.join(synthetic_root, 'posed_images'), dst)
    return dst


@pytest.fixture(scope='session')
def tiny_sam_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('sam') / 'tiny_sam.pth')
    torch.save(build_tiny_sam().state_dict(), path)
    return path


@pytest.fixture(scope='session')
def tiny_vit_checkpoint(tmp_path_factory):
    """An mmpretrain-style classifier checkpoint: ``state_dict`` with ``backbone.*`` keys plus ``meta``."""
    torch.manual_seed(1)
    model = build_tiny_vit()
    torch.nn.init.normal_(model.pos_embed, std=0.02)
    path = str(tmp_path_factory.mktemp('vit') / 'tiny_vit.pth')
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state, meta=dict(note='tiny test model')), path)
    return path


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)
