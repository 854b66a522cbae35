"""How much class a stand-in feature source leaks: its features averaged per object classify held-out objects.

The demo's "random-ViT" targets come from a seeded random ViT on the RGB frames. It was described as carrying no
class, but every synthetic class has its own colour (``datasets/synthetic/rooms.py``, ``CLASS_COLORS``), so a random
network's features of a region still tell its class. This module measures it the way the label generator sees
regions: for every frame, the feature grid is mean-pooled inside every instance (the demo's stand-in SAM masks,
:func:`projects.sam_mtp.labels.frame_labels.pooling.pool_region_features`), an object's feature is the mean of its
per-frame features, its class the most frequent NYU40 id of its pixels; one linear layer (the probe's softmax
regression, :func:`projects.sam_mtp.evaluation.linear_probe.fit_linear_probe`) is fitted on the training scenes'
objects and scores the validation scenes' objects, beside the majority-class baseline.
"""
import os.path as osp
from collections import Counter
from typing import Callable, Dict, Sequence

import numpy as np
import torch


def _read(path: str, flags: int):
    import cv2
    image = cv2.imread(path, flags)
    if image is None:
        raise FileNotFoundError(f'{path}: missing or unreadable image')
    return image


def object_features(records: Sequence, feature_source: Callable[[np.ndarray], torch.Tensor],
                    instance_folder: str = 'instance', label_folder: str = 'label') -> Dict[str, np.ndarray]:
    """Per object (scene, instance id > 0) of ``records``
    (:class:`~projects.sam_mtp.labels.formats.frames.FrameRecord`):
    the mean over its frames of the feature grid mean-pooled inside its pixels, and its class.

    ``feature_source(rgb)`` maps an RGB uint8 (H, W, 3) frame to a (D, h, w) grid (bilinearly up-sampled to the
    frame for pooling, as the label generator does). The instance and class images are
    ``<scene_dir>/<folder>/<frame stem>.png``. Returns ``features`` (N, D) float64, ``classes`` (N,) int64 and
    ``keys`` (N, 2) (scene index in ``records`` order, instance id).
    """
    import cv2

    from projects.sam_mtp.labels.frame_labels.pooling import pool_region_features
    sums, frames, votes, scenes = {}, {}, {}, {}
    for record in records:
        stem = osp.splitext(osp.basename(record.color_path))[0]
        rgb = np.ascontiguousarray(_read(record.color_path, cv2.IMREAD_COLOR)[:, :, ::-1])
        instance = _read(osp.join(record.scene_dir, instance_folder, f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        labels = _read(osp.join(record.scene_dir, label_folder, f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        if instance.shape != rgb.shape[:2] or labels.shape != rgb.shape[:2]:
            raise ValueError(f'{record.scene_dir}: frame {stem} has colour {rgb.shape[:2]}, instance '
                             f'{instance.shape} and class {labels.shape} images of different sizes')
        ids = instance.astype(np.int64)
        present = np.unique(ids[ids > 0])
        if not len(present):
            continue
        with torch.no_grad():
            mean, _ = pool_region_features(feature_source(rgb).float(), ids, num_regions=int(present.max()))
        scene = scenes.setdefault(record.scene, len(scenes))
        for i in present.tolist():
            key = (scene, i)
            sums[key] = sums.get(key, 0.0) + mean[i - 1].double().numpy()
            frames[key] = frames.get(key, 0) + 1
            values, counts = np.unique(labels[ids == i], return_counts=True)
            votes.setdefault(key, Counter()).update(dict(zip(values.tolist(), counts.tolist())))
    keys = sorted(sums)
    return dict(features=np.stack([sums[k] / frames[k] for k in keys]) if keys else np.zeros((0, 0)),
                # ties go to the smaller class id
                classes=np.array([min(votes[k].items(), key=lambda kv: (-kv[1], kv[0]))[0] for k in keys],
                                 dtype=np.int64),
                keys=np.array(keys, dtype=np.int64).reshape(-1, 2))


def classify_objects(train: Dict[str, np.ndarray], val: Dict[str, np.ndarray], weight_decay: float = 1e-4) -> dict:
    """One linear layer fitted on ``train``'s objects (:func:`object_features`) scores ``val``'s.

    Returns ``accuracy`` (fraction of val objects whose class is predicted), ``majority_accuracy`` (always the
    most frequent training class), ``val_majority_share`` (the most frequent val class's share), the object
    counts and the class list.
    """
    from projects.sam_mtp.evaluation.linear_probe import fit_linear_probe, predict_tokens
    classes = np.unique(train['classes'])
    index = {c: i for i, c in enumerate(classes.tolist())}
    one_hot = torch.zeros(len(train['classes']), len(classes), dtype=torch.float64)
    one_hot[torch.arange(len(train['classes'])), torch.tensor([index[c] for c in train['classes'].tolist()])] = 1
    probe = fit_linear_probe(torch.from_numpy(train['features']), one_hot, weight_decay=weight_decay)
    predicted = classes[predict_tokens(probe, torch.from_numpy(val['features'])).numpy()]
    train_counts = np.bincount(train['classes'])
    val_counts = np.bincount(val['classes'])
    majority = int(train_counts.argmax())
    return dict(accuracy=float((predicted == val['classes']).mean()),
                majority_accuracy=float((val['classes'] == majority).mean()),
                val_majority_share=float(val_counts.max() / len(val['classes'])),
                train_objects=int(len(train['classes'])), val_objects=int(len(val['classes'])),
                classes=classes.tolist())


def rgb_grid(rgb: np.ndarray) -> torch.Tensor:
    """The frame's colour as a (3, H, W) "feature grid": what the colour alone tells (a control's control)."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()
