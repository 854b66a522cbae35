"""Frozen-feature linear probe of per-point semantics on SAM-guided token features.

The encoder stays frozen. Every point takes the feature of the token it belongs to, and one linear layer
(softmax regression, full batch, L-BFGS in float64) is fitted on the training scenes to predict the point's
semantic class; the held-out scenes are scored per point with mmdet3d's ``seg_eval``. Points of one token share
one feature, so the per-point cross-entropy is computed exactly at token level from each token's class
histogram (``sum_c count[t, c] * -log p(c | token t)``). Points that no token holds (the tokenizer's cap) are
left out of both sides; ``coverage`` says which fraction of labelled points was scored, the same for every
encoder because tokens do not depend on the encoder's weights.

Nothing here is random: the tokenizer samples token members from its ``eval_seed`` generator in eval mode and
the fit is a deterministic full-batch optimisation, so the result is a function of the encoder weights.
"""
import json
import logging
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import MMLogger
from torch import Tensor

__all__ = ['token_class_histograms', 'fit_linear_probe', 'predict_tokens', 'load_scenes', 'extract_scene_tokens',
           'probe_encoder', 'build_probe_datasets', 'build_frozen_backbone', 'run_linear_probe']


def token_class_histograms(point_token: Tensor, labels: Tensor, num_tokens: int, num_classes: int) -> Tensor:
    """(num_tokens, num_classes) float64 counts of the labelled points of every token.

    ``point_token`` (N,) is each point's token (-1: none); ``labels`` (N,) its class, values outside
    ``[0, num_classes)`` (the ignore index) are not counted.
    """
    keep = (point_token >= 0) & (labels >= 0) & (labels < num_classes)
    flat = point_token[keep].long() * num_classes + labels[keep].long()
    counts = torch.bincount(flat, minlength=num_tokens * num_classes)
    return counts.view(num_tokens, num_classes).double()


def fit_linear_probe(features: Tensor, histograms: Tensor, weight_decay: float = 1e-4,
                     max_iter: int = 300) -> Dict[str, Tensor]:
    """Softmax regression of the point classes on standardised token features.

    Minimises ``sum_t sum_c H[t, c] * -log softmax(W z_t + b)_c / sum(H) + weight_decay * |W|^2`` with
    ``z = (x - mean) / std`` (train statistics), in float64 with L-BFGS (strong-Wolfe line search).

    Args:
        features (Tensor): (T, C) token features.
        histograms (Tensor): (T, K) per-token class counts (:func:`token_class_histograms`).

    Returns:
        ``dict(weight (K, C), bias (K,), mean (C,), std (C,))``, float64.
    """
    if features.shape[0] != histograms.shape[0]:
        raise ValueError(f'fit_linear_probe: {features.shape[0]} token features but {histograms.shape[0]} '
                         'histograms')
    used = histograms.sum(1) > 0
    if not bool(used.any()):
        raise ValueError('fit_linear_probe: no labelled point in any token of the training scenes')
    x = features[used].double()
    h = histograms[used].double()
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    total = h.sum()
    weight = torch.zeros(h.shape[1], z.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(h.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        log_p = torch.log_softmax(z @ weight.T + bias, dim=1)
        loss = -(h * log_p).sum() / total + weight_decay * weight.square().sum()
        loss.backward()
        return loss

    # Full-batch steps on a few thousand numbers: one thread is faster than two fighting over tiny kernels.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    return dict(weight=weight.detach(), bias=bias.detach(), mean=mean, std=std)


def predict_tokens(probe: Dict[str, Tensor], features: Tensor) -> Tensor:
    """(T,) class of every token under a fitted probe."""
    z = (features.double() - probe['mean']) / probe['std']
    return (z @ probe['weight'].T + probe['bias']).argmax(1)


def load_scenes(dataset, center_xy: bool = True) -> List[dict]:
    """Points and per-point semantic labels of every scene of ``dataset``, read once for all encoders.

    Each item must be mmdet3d's packed ``dict(inputs=dict(points=(N, D)), data_samples=...)`` with
    ``gt_pts_seg.pts_semantic_mask``. With ``center_xy`` the scene is moved so that its points' xy mean is 0,
    as pretraining frames are (``FrameCenterPoints(axes='xy')``).
    """
    scenes = []
    for index in range(len(dataset)):
        item = dataset[index]
        sample = item['data_samples']
        source = f'scene {sample.metainfo.get("lidar_path", index)}'
        seg = getattr(sample, 'gt_pts_seg', None)
        labels = getattr(seg, 'pts_semantic_mask', None) if seg is not None else None
        if labels is None:
            raise ValueError(f'{source}: the probe pipeline gave no pts_semantic_mask; it needs LoadAnnotations3D('
                             'with_seg_3d=True) and Pack3DDetInputs(keys=[..., "pts_semantic_mask"])')
        points = item['inputs']['points'].float().clone()
        labels = torch.as_tensor(np.asarray(labels)).long()
        if len(labels) != len(points):
            raise ValueError(f'{source}: {len(points)} points but {len(labels)} semantic labels')
        if center_xy:
            points[:, :2] -= points[:, :2].mean(0)
        scenes.append(dict(points=points, labels=labels))
    return scenes


@torch.no_grad()
def extract_scene_tokens(backbone: torch.nn.Module, scenes: Sequence[dict], num_classes: int) -> List[dict]:
    """Frozen token features of every scene of :func:`load_scenes`: one ``dict(features (T, C), point_token
    (N,), labels (N,), histograms (T, K))`` per scene, with only the scene's real tokens."""
    backbone.eval()
    out = []
    for scene in scenes:
        result = backbone(scene['points'][None])
        point_token = result['point_token'][0]
        num_tokens = int(point_token.max()) + 1 if bool((point_token >= 0).any()) else 0
        features = result['fp_features'][-1][0].T[:num_tokens]
        out.append(dict(features=features, point_token=point_token, labels=scene['labels'],
                        histograms=token_class_histograms(point_token, scene['labels'], num_tokens, num_classes)))
    return out


def probe_encoder(backbone: torch.nn.Module, train_scenes: Sequence[dict], test_scenes: Sequence[dict],
                  class_names: Sequence[str], ignore_index: int, weight_decay: float = 1e-4) -> dict:
    """Fit the probe on the training scenes and score the test scenes' points with mmdet3d's ``seg_eval``
    (scenes from :func:`load_scenes`).

    Returns ``dict(miou, acc, acc_cls, coverage, train_tokens, test_points)``.
    """
    from mmdet3d.evaluation.functional import seg_eval
    num_classes = len(class_names)
    train = extract_scene_tokens(backbone, train_scenes, num_classes)
    probe = fit_linear_probe(torch.cat([s['features'] for s in train]), torch.cat([s['histograms'] for s in train]),
                             weight_decay=weight_decay)
    gts, preds = [], []
    labelled = scored = 0
    for scene in extract_scene_tokens(backbone, test_scenes, num_classes):
        token_class = predict_tokens(probe, scene['features'])
        held = scene['point_token'] >= 0
        is_labelled = (scene['labels'] >= 0) & (scene['labels'] < num_classes)
        labelled += int(is_labelled.sum())
        scored += int((held & is_labelled).sum())
        gts.append(scene['labels'][held].numpy().astype(np.int64))
        preds.append(token_class[scene['point_token'][held]].numpy().astype(np.int64))
    if scored == 0:
        raise ValueError('probe: no labelled test point is held by a token')
    with np.errstate(invalid='ignore', divide='ignore'):  # classes absent from the test scenes give NaN IoU
        metrics = seg_eval(gts, preds, {i: name for i, name in enumerate(class_names)}, ignore_index,
                           logger='silent')
    return dict(miou=float(metrics['miou']), acc=float(metrics['acc']), acc_cls=float(metrics['acc_cls']),
                coverage=scored / max(labelled, 1), train_tokens=int(sum(len(s['features']) for s in train)),
                test_points=scored)


def build_probe_datasets(cfg) -> Tuple[object, object]:
    """The training and test scenes of a segmentation config, each scene once, through its test pipeline
    with the semantic mask packed (``Pack3DDetInputs`` keys + ``pts_semantic_mask``)."""
    import copy

    from mmdet3d.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    packs = [t for t in pipeline if t['type'] in ('Pack3DDetInputs', 'mmdet3d.Pack3DDetInputs')]
    if not packs or not any(t['type'].endswith('LoadAnnotations3D') and t.get('with_seg_3d') for t in pipeline):
        raise ValueError('probe: the config\'s test pipeline needs LoadAnnotations3D(with_seg_3d=True) and '
                         'Pack3DDetInputs (a segmentation config)')
    packs[-1]['keys'] = list(dict.fromkeys(list(packs[-1]['keys']) + ['pts_semantic_mask']))

    def inner(dataset_cfg):
        while 'dataset' in dataset_cfg and dataset_cfg.get('type') in ('RepeatDataset', 'ClassBalancedDataset'):
            dataset_cfg = dataset_cfg['dataset']
        dataset_cfg = copy.deepcopy(dataset_cfg)
        dataset_cfg.update(pipeline=pipeline, test_mode=True)
        dataset_cfg.pop('scene_idxs', None)
        dataset_cfg.pop('indices', None)
        return DATASETS.build(dataset_cfg)

    return inner(cfg.train_dataloader.dataset), inner(cfg.test_dataloader.dataset)


def build_frozen_backbone(cfg, checkpoint: Optional[str] = None, seed: int = 0) -> torch.nn.Module:
    """The config's ``model.backbone`` with its encoder from ``checkpoint`` (key prefix ``backbone.``), or
    randomly initialised under ``torch.manual_seed(seed)`` when ``checkpoint`` is None; frozen, eval mode."""
    import copy

    from mmdet3d.registry import MODELS
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg['init_cfg'] = None
    torch.manual_seed(seed)
    backbone = MODELS.build(backbone_cfg)
    # mmengine logs every parameter's initialisation at INFO when no log file is open; keep the console short.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        backbone.init_weights()
    finally:
        logger.setLevel(level)
    if checkpoint is not None:
        backbone.load_pretrained(checkpoint, 'backbone.')
    backbone.requires_grad_(False)
    return backbone.eval()


def run_linear_probe(config_path: str, checkpoints: Sequence[str] = (), random_init_seeds: Sequence[int] = (),
                     weight_decay: float = 1e-4, center_xy: bool = True, out: Optional[str] = None,
                     cfg_options: Optional[dict] = None) -> List[dict]:
    """Probe every checkpoint's encoder and every random initialisation on a segmentation config's scenes.

    The config gives the backbone (tokenizer + encoder), the training scenes (fit) and the test scenes (score).
    Files and settings are checked first (:class:`~projects.sam_mtp.engine.launch.ConfigCheckError`, one line);
    the scenes are read once for all encoders. Returns one dict per encoder (``encoder``: the checkpoint path or
    ``'random-init'``, ``seed``, the metrics of :func:`probe_encoder`, ``seconds``), written to ``out`` as JSON.
    """
    from mmengine.config import Config
    from mmengine.logging import print_log

    from projects.sam_mtp.engine.launch import ConfigCheckError, check_dataset_files
    from projects.sam_mtp.labels.fileio import atomic_write
    if not osp.isfile(config_path):
        raise ConfigCheckError(f'{config_path}: config file does not exist')
    cfg = Config.fromfile(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for path in checkpoints:
        if not osp.isfile(path):
            raise ConfigCheckError(f'{path}: checkpoint file does not exist')
    check_dataset_files(cfg, config_path, phases=('train', 'test'))
    head = cfg.model.get('decode_head', {})
    if 'num_classes' not in head:
        raise ConfigCheckError(f'{config_path}: no model.decode_head.num_classes; the probe needs a '
                               'segmentation config')
    train_set, test_set = build_probe_datasets(cfg)
    classes = list(train_set.metainfo.get('classes', range(head['num_classes'])))[:head['num_classes']]
    ignore_index = head.get('ignore_index', len(classes))
    train_scenes = load_scenes(train_set, center_xy=center_xy)
    test_scenes = load_scenes(test_set, center_xy=center_xy)
    encoders = [(path, None) for path in checkpoints] + [(None, seed) for seed in random_init_seeds]
    results = []
    for checkpoint, seed in encoders:
        start = time.time()
        backbone = build_frozen_backbone(cfg, checkpoint, seed or 0)
        metrics = probe_encoder(backbone, train_scenes, test_scenes, classes, ignore_index, weight_decay)
        result = dict(encoder=checkpoint or 'random-init', seed=seed, **metrics,
                      seconds=round(time.time() - start, 1))
        results.append(result)
        print_log(f'[probe] {result["encoder"]}{"" if seed is None else f" (seed {seed})"}: mIoU '
                  f'{metrics["miou"]:.3f}, acc {metrics["acc"]:.3f}, coverage {metrics["coverage"]:.3f} '
                  f'({result["seconds"]} s)', logger='current')
    if out:
        atomic_write(out, lambda f: f.write(json.dumps(results, indent=1).encode()))
    return results
