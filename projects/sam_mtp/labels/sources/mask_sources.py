"""Mask sources: turn a colour image into an int32 region-id map (0 = no region, 1..R contiguous).

A mask source is called as ``source(image, record)`` with the RGB uint8 image already resized to the mask
resolution and the frame's :class:`~..formats.frames.FrameRecord`; it returns an (H, W) int32 map of the same size.
Sources are registered in mmdet3d's ``MODELS`` registry and built from the label config.
"""
import os
import time
from typing import Optional, Sequence

import numpy as np
import torch
from mmdet3d.registry import MODELS

from ..formats.frames import FrameError, FrameRecord
from ..runner.sharding import resolve_device
from .checkpoints import load_state_dict_strict, require_checkpoint


def compact_region_ids(id_map: np.ndarray, background: Sequence[int] = (0, )) -> np.ndarray:
    """Relabel an integer map so its non-background values become 1..R in increasing order (int32)."""
    values, inverse = np.unique(id_map, return_inverse=True)
    keep = ~np.isin(values, np.asarray(background))
    new_ids = np.zeros(values.shape, np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[inverse.reshape(id_map.shape)]


def masks_to_region_map(masks: np.ndarray, areas: Optional[np.ndarray] = None) -> np.ndarray:
    """Paint binary masks (M, H, W) into one region map where **the smaller mask wins** on overlaps.

    Equivalent to painting the masks in descending area order (ties: later mask first, so the earlier of two
    equal masks wins). Masks left with no pixel are dropped; ids are contiguous and ordered by area, smallest
    first. Vectorised: the winner of each pixel is the first covering mask in ascending-area order.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f'masks must have shape (M, H, W), got {masks.shape}')
    if masks.shape[0] == 0:
        return np.zeros(masks.shape[1:], np.int32)
    areas = masks.reshape(masks.shape[0], -1).sum(1) if areas is None else np.asarray(areas)
    order = np.argsort(areas, kind='stable')
    stacked = torch.from_numpy(masks[order])
    covered, first = stacked.max(0)  # first True along the mask axis = smallest covering mask
    id_map = np.where(covered.numpy(), first.numpy().astype(np.int32) + 1, 0)
    return compact_region_ids(id_map)


@MODELS.register_module()
class SAMAutomaticMaskSource:
    """Segment Anything's automatic mask generator (SAM-AMG) as a region-map source.

    Args:
        checkpoint: path of the SAM weights (e.g. ``sam_vit_h_4b8939.pth`` from the segment-anything release).
        model_type: ``vit_h`` / ``vit_l`` / ``vit_b`` (segment-anything's ``sam_model_registry``) or
            ``custom`` with ``arch`` describing the model (small models for tests).
        arch: for ``custom``: dict(encoder_embed_dim, encoder_depth, encoder_num_heads,
            encoder_global_attn_indexes, image_size=1024, patch_size=16, prompt_embed_dim=256,
            window_size=14, decoder_depth=2, decoder_mlp_dim=2048, decoder_num_heads=8, iou_head_depth=3,
            iou_head_hidden_dim=256, mlp_ratio=4, mask_in_chans=16).
        device: torch device; ``cuda`` becomes ``cuda:$LOCAL_RANK`` under a distributed launcher.
        The remaining arguments are SamAutomaticMaskGenerator's; the defaults are Bridge3D's values.

    Overlaps: SAM-AMG masks may overlap; the smaller mask wins (see :func:`masks_to_region_map`), so objects on
    a table keep their own ids instead of being swallowed by the table's mask.
    """

    def __init__(self, checkpoint: str, model_type: str = 'vit_h', arch: Optional[dict] = None,
                 device: str = 'cuda', points_per_side: int = 32, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.86, stability_score_thresh: float = 0.92,
                 stability_score_offset: float = 1.0, box_nms_thresh: float = 0.7, crop_n_layers: int = 1,
                 crop_nms_thresh: float = 0.7, crop_overlap_ratio: float = 512 / 1500,
                 crop_n_points_downscale_factor: int = 2, min_mask_region_area: int = 100):
        from segment_anything import SamAutomaticMaskGenerator
        require_checkpoint(checkpoint, f'SAM ({model_type})')
        self.device = resolve_device(device)
        self.model = build_sam(model_type, arch)
        load_state_dict_strict(self.model, checkpoint, f'SAM ({model_type})')
        self.model.to(self.device).eval()
        self.generator = SamAutomaticMaskGenerator(
            self.model, points_per_side=points_per_side, points_per_batch=points_per_batch,
            pred_iou_thresh=pred_iou_thresh, stability_score_thresh=stability_score_thresh,
            stability_score_offset=stability_score_offset, box_nms_thresh=box_nms_thresh,
            crop_n_layers=crop_n_layers, crop_nms_thresh=crop_nms_thresh, crop_overlap_ratio=crop_overlap_ratio,
            crop_n_points_downscale_factor=crop_n_points_downscale_factor,
            min_mask_region_area=min_mask_region_area, output_mode='binary_mask')

    @torch.no_grad()
    def __call__(self, image: np.ndarray, record: Optional[FrameRecord] = None) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f'SAM expects an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}')
        results = self.generator.generate(image)
        if not results:
            return np.zeros(image.shape[:2], np.int32)
        masks = np.stack([r['segmentation'] for r in results])
        areas = np.asarray([r['area'] for r in results])
        return masks_to_region_map(masks, areas)


def build_sam(model_type: str, arch: Optional[dict] = None) -> torch.nn.Module:
    """An uninitialised SAM: a released size from segment-anything's registry, or a ``custom`` size."""
    from segment_anything import sam_model_registry
    if model_type != 'custom':
        if model_type not in sam_model_registry or model_type == 'default':
            raise ValueError(f'unknown SAM model_type {model_type!r}; use vit_h, vit_l, vit_b or custom')
        if arch is not None:
            raise ValueError('arch is only used with model_type="custom"')
        return sam_model_registry[model_type](checkpoint=None)
    if arch is None:
        raise ValueError('model_type="custom" needs an arch dict')
    from functools import partial

    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    a = dict(image_size=1024, patch_size=16, prompt_embed_dim=256, window_size=14, decoder_depth=2,
             decoder_mlp_dim=2048, decoder_num_heads=8, iou_head_depth=3, iou_head_hidden_dim=256, mlp_ratio=4,
             mask_in_chans=16)
    unknown = set(arch) - set(a) - {'encoder_embed_dim', 'encoder_depth', 'encoder_num_heads',
                                    'encoder_global_attn_indexes'}
    if unknown:
        raise ValueError(f'unknown SAM arch keys {sorted(unknown)}')
    a.update(arch)
    grid = a['image_size'] // a['patch_size']
    encoder = ImageEncoderViT(
        depth=a['encoder_depth'], embed_dim=a['encoder_embed_dim'], img_size=a['image_size'],
        mlp_ratio=a['mlp_ratio'], norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=a['encoder_num_heads'], patch_size=a['patch_size'], qkv_bias=True, use_rel_pos=True,
        global_attn_indexes=tuple(a['encoder_global_attn_indexes']), window_size=a['window_size'],
        out_chans=a['prompt_embed_dim'])
    prompt = PromptEncoder(embed_dim=a['prompt_embed_dim'], image_embedding_size=(grid, grid),
                           input_image_size=(a['image_size'], a['image_size']),
                           mask_in_chans=a['mask_in_chans'])
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=a['decoder_depth'], embedding_dim=a['prompt_embed_dim'],
                                      mlp_dim=a['decoder_mlp_dim'], num_heads=a['decoder_num_heads']),
        transformer_dim=a['prompt_embed_dim'], iou_head_depth=a['iou_head_depth'],
        iou_head_hidden_dim=a['iou_head_hidden_dim'])
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])


@MODELS.register_module()
class InstanceImageMaskSource:
    """Stand-in mask source that reads ground-truth instance images instead of running SAM.

    For demos and tests on synthetic data (and for ablations with perfect masks): reads
    ``<scene_dir>/<folder>/<stem>.png`` (uint16 instance ids, ``stem`` = the colour file's stem), resizes it
    with nearest neighbour to the mask resolution and relabels instances to 1..R (``ignore_ids`` become 0).
    This is NOT what the method uses for pretraining; use SAMAutomaticMaskSource for real labels.
    """

    def __init__(self, folder: str = 'instance', ignore_ids: Sequence[int] = (0, )):
        self.folder = folder
        self.ignore_ids = tuple(int(i) for i in ignore_ids)

    def __call__(self, image: np.ndarray, record: FrameRecord) -> np.ndarray:
        import cv2
        stem = os.path.splitext(os.path.basename(record.color_path))[0]
        path = os.path.join(record.scene_dir, self.folder, f'{stem}.png')
        if not os.path.isfile(path):
            raise FrameError('missing_file', path, 'instance image does not exist')
        inst = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if inst is None or inst.ndim != 2:
            raise FrameError('corrupt_image', path, 'instance image cannot be decoded as a single-channel PNG')
        h, w = image.shape[:2]
        if inst.shape != (h, w):
            inst = cv2.resize(inst, (w, h), interpolation=cv2.INTER_NEAREST)
        return compact_region_ids(inst.astype(np.int64), self.ignore_ids)



class TimedMaskSource:
    """A mask source called at a mask size (the image resized to it: area interpolation when shrinking, bilinear
    when enlarging), its map checked, the seconds spent in the source added up (the "model part" of timings)."""

    def __init__(self, source):
        self.source = source
        self.seconds = 0.0

    def __call__(self, image: np.ndarray, record: FrameRecord, mask_size=None) -> np.ndarray:
        """Region map (int32, 0 = none) of ``image`` resized to ``mask_size`` (H, W; None: its own size)."""
        import cv2
        if mask_size is not None and image.shape[:2] != tuple(mask_size):
            height, width = mask_size
            shrink = image.shape[0] > height
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        tic = time.perf_counter()
        region_map = np.asarray(self.source(image, record))
        self.seconds += time.perf_counter() - tic
        if region_map.shape != image.shape[:2]:
            raise RuntimeError(f'{type(self.source).__name__} returned a {region_map.shape} map for a '
                               f'{image.shape[:2]} image')
        return region_map.astype(np.int32, copy=False)


def build_mask_source(mask_source) -> Optional[TimedMaskSource]:
    """A :class:`TimedMaskSource` from a registered source config dict or a callable (None stays None)."""
    if mask_source is None:
        return None
    if isinstance(mask_source, TimedMaskSource):
        return mask_source
    if isinstance(mask_source, dict):
        mask_source = MODELS.build(dict(mask_source))
    return TimedMaskSource(mask_source)
