"""Paper-size timings of the GPU check (dev/gpu_check/run.sh --phase bench runs them).

    python dev/gpu_check/bench.py ITEM [ITEM ...] --out-dir DIR [--device cuda] [--steps 5] [--warmup 1] [--tiny]

Items (sizes from the configs, so that they follow the method's settings):
  stage1_step       stage-1 training step, 16 frames x 20k points per GPU,
                    configs/sam_mtp/pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py
  stage2_step       stage-2 training step (frozen teacher forward included),
                    configs/sam_mtp/pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py
  sam_vit_h_amg     SAM ViT-H automatic masks on one 640x480 frame, configs/sam_mtp/labels/scannet_sam_dinov2.py
  dinov2_vit_b      DINOv2 ViT-B/14 features of one frame (and region pooling), same config
  threedetr_step    3DETR + SAM-MTP encoder step (8 x 40k),
                    configs/sam_mtp/benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py
  groupfree3d_step  GroupFree3D + SAM-MTP encoder step (8 x 50k),
                    configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py
  point_ops         FPS / ball query / kNN / three-NN at scene sizes: mmcv's kernels (if built) and ours on CUDA

Weights are random: the cost of a step or a forward does not depend on them. SAM's automatic mask generator
runs with its quality thresholds at 0, because random weights pass none of them; the item reports how many masks
its post-processing handled (real SAM ViT-H keeps on the order of 50-200 per indoor frame). Times are the
median of ``--steps`` after ``--warmup``, each bracketed by ``torch.cuda.synchronize``; peak memory is
``torch.cuda.max_memory_allocated`` over those steps. SAM's image encoder is timed, and written to
``<item>.partial.json``, before the automatic-mask loop, the slow part: median of up to 3 frames. Every result is
stamped with the mmcv mode its point ops ran in (``mmcv``). The items run one after the other in this process,
each result written as soon as it is measured. ``--tiny --device cpu`` runs every item at toy size on the CPU (how
the tests keep this script from rotting); its numbers mean nothing.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

ITEMS = ('stage1_step', 'stage2_step', 'sam_vit_h_amg', 'dinov2_vit_b', 'threedetr_step', 'groupfree3d_step',
         'point_ops')
LABEL_CONFIG = 'configs/sam_mtp/labels/scannet_sam_dinov2.py'


def config(path: str):
    from mmengine.config import Config
    return Config.fromfile(osp.join(ROOT, path))


class Timer:
    """Median / min of a callable's wall time on ``device`` and the peak memory allocated meanwhile."""

    def __init__(self, device, steps: int, warmup: int):
        import torch
        self.torch, self.device, self.steps, self.warmup = torch, device, steps, warmup

    def sync(self) -> None:
        if self.device.type == 'cuda':
            self.torch.cuda.synchronize(self.device)

    def __call__(self, fn: Callable[[], object], what: str, **extra) -> dict:
        torch = self.torch
        if self.device.type == 'cuda':
            torch.cuda.reset_peak_memory_stats(self.device)
        for _ in range(self.warmup):
            fn()
        times: List[float] = []
        for _ in range(self.steps):
            self.sync()
            start = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == 'cuda' else None
        return dict(what=what, median_s=statistics.median(times), min_s=min(times), steps=self.steps,
                    warmup=self.warmup, peak_memory_mib=None if peak is None else round(peak, 1), **extra)


# --------------------------------------------------------------------------------------- pretraining steps
def _train_step_timing(model, optim_cfg, data, timer: Timer, what: str, **extra) -> dict:
    from mmengine.optim import build_optim_wrapper
    model.train()
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    losses = {}

    def step():
        losses.update(model.train_step(data, optim_wrapper))

    result = timer(step, what, **extra)
    result['losses'] = {k: float(v.detach()) for k, v in losses.items()}
    if not all(math.isfinite(v) for v in result['losses'].values()):
        raise FloatingPointError(f'{what}: a loss is not finite: {result["losses"]}')
    return result


def stage_step(stage: int, args, timer: Timer) -> dict:
    import torch
    from mmdet3d.registry import MODELS

    from projects.sam_mtp.testing import region_batch

    cfg = config(f'configs/sam_mtp/demo/sam-mtp-stage{stage}_plain-transformer_1xb8-'
                 f'{(15, 30)[stage - 1]}e_synthetic-scannet-frames.py' if args.tiny else
                 f'configs/sam_mtp/pretrain/sam-mtp-stage{stage}_plain-transformer_4xb16-120e_scannet-frames.py')
    batch = 2 if args.tiny else cfg.train_dataloader.batch_size
    points = 2048 if args.tiny else cfg.num_points
    regions = 16 if args.tiny else args.regions
    if stage == 2:  # the teacher's weights do not change the cost: a random stage-1 model as its checkpoint
        teacher = MODELS.build(cfg.model.teacher)
        path = osp.join(args.tmp_dir, 'stage1_random.pth')
        torch.save(dict(state_dict=teacher.state_dict(), meta={}), path)
        cfg.model.teacher_checkpoint = path
        feature_dim = cfg.model.teacher.projector.out_channels
    else:
        feature_dim = cfg.model.projector.out_channels
    model = MODELS.build(cfg.model).to(timer.device)
    model.init_weights()  # stage 2: loads the teacher
    inputs, samples = region_batch(batch, points, regions, feature_dim, 32, torch.Generator().manual_seed(0))
    return _train_step_timing(
        model, cfg.optim_wrapper, dict(inputs=inputs, data_samples=samples), timer,
        f'stage-{stage} training step, {batch} frames x {points:,} points, ~{regions} SAM regions',
        batch_per_gpu=batch, points=points, epochs=cfg.train_cfg.max_epochs)


# ------------------------------------------------------------------------------------------- label models
def sam_model_on(device, model_type: str, arch=None):
    """SAM with random weights on ``device``.

    Made under the device context, so that ViT-H's 636M parameters are initialised there directly, then moved
    with ``.to(device)``: segment-anything creates ``pixel_mean`` / ``pixel_std`` with the legacy
    ``torch.Tensor(list)``, which ignores the device context, and ``Sam.device`` (where ``SamPredictor`` puts the
    image) is the device of ``pixel_mean``.
    """
    import torch

    from projects.sam_mtp.labels.sources.mask_sources import build_sam
    with torch.device(device):
        model = build_sam(model_type, arch)
    return model.to(device).eval()


def sam_amg(args, timer: Timer) -> dict:
    import numpy as np
    import torch
    from segment_anything import SamAutomaticMaskGenerator

    from projects.sam_mtp.labels.sources.mask_sources import masks_to_region_map
    from projects.sam_mtp.testing import TINY_SAM_ARCH, voronoi_image
    cfg = config(LABEL_CONFIG)
    settings = {k: v for k, v in cfg.mask_source.items() if k not in ('type', 'checkpoint', 'model_type', 'arch',
                                                                       'device')}
    model_type, arch = cfg.mask_source.model_type, cfg.mask_source.get('arch')
    if args.tiny:
        model_type, settings['points_per_side'], arch = 'custom', 2, dict(TINY_SAM_ARCH)
    # Random weights predict low IoU and stability for every mask: at Bridge3D's thresholds nothing is kept and
    # SAM's generator then fails on its empty crop list. With both thresholds at 0 every mask reaches box NMS,
    # so the decoder and post-processing run on real numbers of masks (reported as masks_kept).
    notes = [f'pred_iou_thresh {settings["pred_iou_thresh"]} and stability_score_thresh '
             f'{settings["stability_score_thresh"]} set to 0 (random weights pass neither)']
    settings.update(pred_iou_thresh=0.0, stability_score_thresh=0.0)
    if _is_stand_in('cv2') and settings.get('min_mask_region_area', 0) > 0:
        settings['min_mask_region_area'] = 0
        notes.append('small-region removal (OpenCV, CPU) not run: no OpenCV on this machine')
    generator = SamAutomaticMaskGenerator(sam_model_on(timer.device, model_type, arch), output_mode='binary_mask',
                                          **settings)
    height, width = cfg.label_cfg.mask_size
    image = voronoi_image(height, width)  # edges for SAM to find; its weights are random anyway

    # The image encoder first, kept at once: the mask loop below is the slow part, and an item stopped in it
    # (its cap, the phase budget) still reports the encoder's time per crop.
    encoder = timer(lambda: generator.predictor.set_image(image),
                    f'image encoder on the whole frame (1 of the {_crops(settings["crop_n_layers"])} crops)')
    args.save_part('image_encoder', encoder)
    kept = []

    @torch.no_grad()
    def frame():
        results = generator.generate(image)
        kept.append(len(results))
        if results:
            masks_to_region_map(np.stack([r['segmentation'] for r in results]), np.array([r['area'] for r in results]))

    # The encoder's runs above warmed the GPU up; a frame takes seconds, so fewer of them.
    frames = Timer(timer.device, steps=min(timer.steps, 3), warmup=0)
    result = frames(frame, f'SAM {model_type} automatic masks, one {width}x{height} frame '
                    f'({settings["points_per_side"]}^2 points, {settings["crop_n_layers"]} crop layer)',
                    settings=settings, notes=notes)
    result['masks_kept'] = kept[-1]
    result['parts'] = dict(image_encoder=encoder)
    return result


def _crops(crop_n_layers: int) -> int:
    """Crops SAM's automatic mask generator encodes per image: the whole image plus (2^i)^2 per layer i."""
    return sum(4 ** i for i in range(crop_n_layers + 1))


def dinov2(args, timer: Timer) -> dict:
    import torch

    from projects.sam_mtp.labels.frame_labels.pooling import pool_region_features
    from projects.sam_mtp.labels.sources.feature_sources import ViTFeatureSource
    from projects.sam_mtp.testing import TINY_VIT_ARCH, voronoi_regions
    cfg = config(LABEL_CONFIG).feature_source
    arch = dict(TINY_VIT_ARCH) if args.tiny else cfg.arch
    # The DINOv2 source minus its checkpoint: random weights, same network and input size.
    source = ViTFeatureSource(arch=arch, patch_size=cfg.patch_size, img_size=cfg.img_size,
                              layer_scale_init_value=cfg.layer_scale_init_value, short_side=cfg.short_side,
                              device=str(timer.device), fp16=cfg.fp16)
    source._finish()
    height, width = source.input_size(968, 1296)  # ScanNet's colour frames
    x = torch.randn(1, 3, height, width, device=timer.device)

    @torch.no_grad()
    def forward():
        with torch.autocast(timer.device.type, enabled=source.fp16 and timer.device.type == 'cuda'):
            return source.model(x)[-1]

    result = timer(forward, f'DINOv2 ViT-{"tiny" if args.tiny else cfg.arch} forward, {width}x{height} input '
                   f'({width // cfg.patch_size}x{height // cfg.patch_size} patches; the CPU resize is not included)')
    features = forward()[0].float()
    mask_h, mask_w = config(LABEL_CONFIG).label_cfg.mask_size
    region_map = torch.as_tensor(voronoi_regions(mask_h, mask_w, 100), device=timer.device)
    pooled = timer(lambda: pool_region_features(features, region_map),
                   f'mean + max pooling of {features.shape[0]}-d features into 100 regions at {mask_w}x{mask_h}')
    result['pooling_s'] = pooled['median_s']
    result['parts'] = dict(pooling=pooled)
    return result


def _is_stand_in(module: str) -> bool:
    try:
        imported = __import__(module)
    except ImportError:
        return True
    return bool(getattr(imported, 'SAM_MTP_IMPORT_SHIM', False))


# --------------------------------------------------------------------------------------------- detection
# Scene segments per detection bench scene. The configs' SAM tokenizer (configs/sam_mtp/_base_/models/
# sam-mtp-point-backbone.py) makes one token per segment of >= 16 points, up to 1,024 per scene, plus one fallback
# token per ~64 points in no segment; SAM masks of a ScanNet room's frames merged into 3D give segments by the
# hundreds (objects split into parts, walls and floor into pieces). 400 segments over 90 % of the points give
# the bench's 8 scenes 458-462 tokens each for 3DETR (40k points: ~398 segment + ~63 fallback tokens) and
# 475-479 for GroupFree3D (50k points); the item records the counts it timed (tokens_per_scene), and
# tests/dev/test_gpu_check.py checks them against the tokenizer's rules.
DETECTION_SCENE_SEGMENTS = 400


def detector_step(name: str, args, timer: Timer) -> dict:
    import torch
    from mmdet3d.registry import MODELS
    from mmengine.registry import init_default_scope

    import projects.sam_mtp.models.detectors  # noqa: F401  (3DETR)
    import projects.sam_mtp.models.heads  # noqa: F401
    from projects.sam_mtp.models.tokenizers import SAMGuidedTokenizer
    from projects.sam_mtp.testing import detection_batch

    init_default_scope('mmdet3d')
    paths = dict(threedetr=('benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py',
                            'demo/threedetr_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py'),
                 groupfree3d=('benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py',
                              'demo/groupfree3d_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py'))[name]
    cfg = config('configs/sam_mtp/' + paths[1 if args.tiny else 0])
    cfg.model.backbone.init_cfg = None  # random weights
    batch = 2 if args.tiny else cfg.train_dataloader.batch_size
    points = 2048 if args.tiny else _sampled_points(cfg)
    segments = 40 if args.tiny else DETECTION_SCENE_SEGMENTS
    head = cfg.model.bbox_head
    num_classes = head.get('num_classes')
    model = MODELS.build(cfg.model).to(timer.device)
    tokens = []  # real tokens per scene of the last forward
    for module in model.modules():
        if isinstance(module, SAMGuidedTokenizer):
            module.register_forward_hook(lambda m, i, out: tokens.__setitem__(slice(None), out.num_tokens.tolist()))
    data = detection_batch(batch, points, 12, torch.Generator().manual_seed(0), num_classes, segments)
    label = dict(threedetr='3DETR', groupfree3d='GroupFree3D')[name]
    result = _train_step_timing(
        model, cfg.optim_wrapper, data, timer,
        f'{label} + SAM-MTP encoder training step, {batch} scenes x {points:,} points, {segments} segments each',
        batch_per_gpu=batch, points=points, segments_per_scene=segments)
    result['tokens_per_scene'] = tokens
    return result


def _sampled_points(cfg) -> int:
    """The PointSample size of the config's training pipeline (40k for 3DETR, 50k for GroupFree3D)."""
    dataset = cfg.train_dataloader.dataset
    pipeline = dataset.get('dataset', dataset).pipeline
    return [t for t in pipeline if t['type'] == 'PointSample'][0]['num_points']


# --------------------------------------------------------------------------------------------- point ops
def point_ops(args, timer: Timer) -> dict:
    import torch

    import projects.sam_mtp.ops as ops
    from projects.sam_mtp.ops.dispatch import mmcv_kernel_available
    batch, num, centres = (2, 2000, 128) if args.tiny else (8, 20000, 1024)
    g = torch.Generator().manual_seed(0)
    xyz = (torch.rand(batch, num, 3, generator=g) * torch.tensor([8., 8., 3.])).to(timer.device)
    centre_xyz = xyz[:, :centres].contiguous()
    calls = dict(
        furthest_point_sample=(f'FPS {num:,} -> {centres}', (xyz, centres)),
        ball_query=(f'ball query r=0.2, 32 of {num:,} points, {centres} centres', (0., 0.2, 32, xyz, centre_xyz)),
        knn=(f'kNN k=32, {centres} centres', (32, xyz, centre_xyz)),
        three_nn=(f'three-NN of {num:,} points on {centres}', (xyz, centre_xyz)))
    parts = {}
    for name, (what, call_args) in calls.items():
        fallback = getattr(ops, f'{name}_torch')
        parts[f'{name}.pytorch'] = timer(lambda: fallback(*call_args), f'{what}, batch {batch}: ours (PyTorch)')
        if timer.device.type != 'cpu' and mmcv_kernel_available(name, timer.device.type):
            kernel = ops.original_op(name)
            parts[f'{name}.mmcv'] = timer(lambda: kernel(*call_args), f'{what}, batch {batch}: mmcv kernel')
    fps = parts['furthest_point_sample.pytorch']
    return dict(what=f'point ops at scene size (batch {batch})', median_s=fps['median_s'], min_s=fps['min_s'],
                peak_memory_mib=max((p['peak_memory_mib'] or 0) for p in parts.values()) or None, parts=parts)


# ------------------------------------------------------------------------------------------------- main
RUNNERS: Dict[str, Callable] = dict(
    stage1_step=lambda args, timer: stage_step(1, args, timer),
    stage2_step=lambda args, timer: stage_step(2, args, timer),
    sam_vit_h_amg=sam_amg,
    dinov2_vit_b=dinov2,
    threedetr_step=lambda args, timer: detector_step('threedetr', args, timer),
    groupfree3d_step=lambda args, timer: detector_step('groupfree3d', args, timer),
    point_ops=point_ops,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('items', nargs='+', choices=ITEMS, metavar='ITEM', help=', '.join(ITEMS))
    parser.add_argument('--out-dir', required=True,
                        help='<item>.json per finished item, <item>.error.json per failed one (atomic writes)')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--item-cap', type=int, default=150, help='seconds an item may take before it is stopped')
    parser.add_argument('--regions', type=int, default=100, help='SAM regions per frame of the stage steps')
    parser.add_argument('--tiny', action='store_true', help='toy sizes (CPU tests); numbers mean nothing')
    parser.add_argument('--tmp-dir', default=None)
    return parser.parse_args(argv)


class ItemTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise ItemTimeout()


def write_json(path: str, value: dict) -> None:
    tmp = f'{path}.tmp{os.getpid()}'
    with open(tmp, 'w') as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


def mmcv_stamp(device_type: str) -> dict:
    """Which implementation timed the point ops of an item: mmcv's CUDA build (None: built without CUDA), the
    route of each dispatched op on ``device_type`` (mmcv's kernel or the plugin's PyTorch op, as learned so far)
    and the mode: ``kernels`` (every op on mmcv), ``fallback`` (every op on PyTorch) or ``mixed``."""
    from projects.sam_mtp.ops.dispatch import kernel_routing, mmcv_cuda_build
    routing = kernel_routing(device_type)
    routes = set(routing.values())
    mode = 'kernels' if routes == {'mmcv'} else 'fallback' if routes == {'pytorch'} else 'mixed'
    return dict(mode=mode, cuda=mmcv_cuda_build(), routing=routing)


def main(argv=None) -> Dict[str, dict]:
    """Run the items one after the other in this process (the stack is imported once); each writes its result
    as soon as it finishes, so a run stopped from outside keeps the finished ones, and an item's finished parts
    (``args.save_part``) go to ``<item>.partial.json`` as soon as they are measured. A failing item (an error,
    or --item-cap reached) is recorded with those parts and the next one runs."""
    args = parse_args(argv)
    import signal
    import traceback

    import torch

    import projects.sam_mtp  # noqa: F401  (registers the modules, installs the point-op dispatch)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('bench.py: --device cuda but no GPU is visible (use --tiny --device cpu for a dry run)')
    os.makedirs(args.out_dir, exist_ok=True)
    results = {}
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        for item in args.items:
            torch.manual_seed(0)
            print(f'bench: {item} ...', flush=True)
            parts: Dict[str, dict] = {}

            def save_part(name: str, value: dict, item=item, parts=parts) -> None:
                parts[name] = value
                write_json(osp.join(args.out_dir, f'{item}.partial.json'),
                           dict(item=item, parts=parts, mmcv=mmcv_stamp(device.type)))

            args.save_part = save_part
            signal.alarm(args.item_cap)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    args.tmp_dir = tmp
                    result = RUNNERS[item](args, Timer(device, args.steps, args.warmup))
            except Exception as error:  # the report says why; the next item still runs
                reason = f'stopped at --item-cap {args.item_cap} s' if isinstance(error, ItemTimeout) else \
                    f'{type(error).__name__}: {error}'.splitlines()[0][:500]
                failed = dict(item=item, reason=reason, traceback=traceback.format_exc()[-3000:],
                              mmcv=mmcv_stamp(device.type))
                if parts:
                    failed['parts'] = parts
                write_json(osp.join(args.out_dir, f'{item}.error.json'), failed)
                print(f'bench: {item} failed: {reason}', flush=True)
                results[item] = dict(status='failed', **failed)
                continue
            finally:
                signal.alarm(0)
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
            result.update(item=item, device=str(device), tiny=args.tiny, mmcv=mmcv_stamp(device.type),
                          gpu=torch.cuda.get_device_name(device) if device.type == 'cuda' else None)
            write_json(osp.join(args.out_dir, f'{item}.json'), result)
            print(json.dumps({k: v for k, v in result.items() if k not in ('parts', 'losses', 'mmcv')}), flush=True)
            results[item] = result
    finally:
        signal.signal(signal.SIGALRM, previous)
    return results


if __name__ == '__main__':
    main()
