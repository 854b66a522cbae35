"""Shared start-up of ``tools/train.py`` and ``tools/test.py``: config checks with readable errors, and
distributed set-up that also works on CPU-only machines (gloo), and the command-line options both take."""
import argparse
import difflib
import os
import os.path as osp
import pickle
import re
import sys

import torch
from mmengine.config import Config


class ConfigCheckError(RuntimeError):
    """A config refers to something that does not exist; the message names the config and the problem."""


_DATA_KEYS = ('ann_file', )


def _iter_dataset_cfgs(dataset_cfg):
    """Yield every leaf dataset config below wrappers such as RepeatDataset / ConcatDataset / CBGSDataset."""
    for _, leaf in _iter_dataset_cfgs_with_keys(dataset_cfg, ''):
        yield leaf


def _iter_dataset_cfgs_with_keys(dataset_cfg, key):
    """Yield ``(config key, leaf dataset config)``; the key is the dotted path that ``--cfg-options`` takes, e.g.
    ``train_dataloader.dataset.dataset`` below a RepeatDataset or ``...dataset.datasets.1`` in a ConcatDataset."""
    if dataset_cfg is None:
        return
    if isinstance(dataset_cfg, (list, tuple)):
        for i, item in enumerate(dataset_cfg):
            yield from _iter_dataset_cfgs_with_keys(item, f'{key}.{i}')
        return
    for wrapped in ('dataset', 'datasets'):
        nested = dataset_cfg.get(wrapped, None)
        if nested:
            yield from _iter_dataset_cfgs_with_keys(nested, f'{key}.{wrapped}')
            return
    yield key, dataset_cfg


def _resolve_ann_file(dataset_cfg):
    ann_file = dataset_cfg.get('ann_file', None)
    if not ann_file:
        return None
    data_root = dataset_cfg.get('data_root', None) or ''
    return ann_file if osp.isabs(ann_file) or not data_root else osp.join(data_root, ann_file)


def check_dataset_files(cfg: Config, config_path: str, phases=('train', 'val', 'test')) -> None:
    """Fail early, naming the config, when a dataset root or annotation file is missing or malformed, or when an
    info file does not fit the config (another dataset's infos, no samples, label features of another width).

    Without this the failure surfaces deep inside a dataloader worker as a bare ``FileNotFoundError``, or at the
    first training step as a shape error.
    """
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader', None)
        if not loader:
            continue
        for key, ds in _iter_dataset_cfgs_with_keys(loader.get('dataset', None), f'{phase}_dataloader.dataset'):
            data_root = ds.get('data_root', None)
            if data_root and not osp.isdir(data_root):
                raise ConfigCheckError(
                    f'{config_path}: {phase}_dataloader dataset {ds.get("type")} has data_root '
                    f'"{data_root}", which does not exist (cwd {os.getcwd()}). Prepare the data (see README '
                    f'"Data preparation") or override it with --cfg-options {key}.data_root=PATH')
            ann_path = _resolve_ann_file(ds)
            if ann_path is None:
                continue
            if not osp.isfile(ann_path):
                raise ConfigCheckError(
                    f'{config_path}: {phase}_dataloader dataset {ds.get("type")} annotation file '
                    f'"{ann_path}" does not exist')
            if ann_path.endswith('.pkl'):
                info = _check_info_pickle(ann_path, config_path, phase)
                _check_info_fits_config(info, ann_path, cfg, config_path, key, ds, phase)


def check_model_config(cfg: Config, config_path: str) -> None:
    """Let the model's class refuse, naming the config, a config it cannot train: a class that defines
    ``check_train_config(cfg)`` returns the problem as text, or None (e.g. ``PointMAE``: a group size larger
    than the points per scene). Runs before the Runner is built, so before the first step."""
    model = cfg.get('model', None)
    if not isinstance(model, dict) or not isinstance(model.get('type', None), str):
        return
    from mmdet3d.registry import MODELS
    check = getattr(MODELS.get(model['type']), 'check_train_config', None)
    problem = check(cfg) if callable(check) else None
    if problem:
        raise ConfigCheckError(f'{config_path}: {problem}')


def _check_info_pickle(path, config_path, phase):
    try:
        with open(path, 'rb') as f:
            info = pickle.load(f)
    except Exception as err:
        raise ConfigCheckError(
            f'{config_path}: {phase} annotation file "{path}" cannot be read as a pickle '
            f'({type(err).__name__}: {err})') from err
    if not isinstance(info, dict) or not isinstance(info.get('data_list'), list) or \
            not isinstance(info.get('metainfo'), dict):
        kind = type(info).__name__ if not isinstance(info, dict) else f'dict with keys {sorted(info)}'
        raise ConfigCheckError(
            f'{config_path}: {phase} annotation file "{path}" is malformed: expected mmengine\'s v2 info format, a '
            f'dict with "metainfo" (dict) and "data_list" (list), got {kind}. Files from mmdet3d < 1.1 need '
            f'mmdet3d\'s update_infos_to_v2 conversion')
    return info


# mmdet3d's converters name the dataset in the info's metainfo ('dataset'; 'DATASET' in older files); a config's
# dataset type names the family it reads (ScanNetDataset, ScanNetSegDataset, SUNRGBDDataset, S3DISSegDataset).
_DATASET_FAMILIES = {'scannet': 'ScanNet', 'sunrgbd': 'SUN RGB-D', 's3dis': 'S3DIS'}
_FRAME_DATASET = 'SamMtpFrameDataset'


def _dataset_family(name):
    """'scannet' / 'sunrgbd' / 's3dis' for a dataset or type name that contains one (case and punctuation
    ignored: 'ScanNet200', 'SUNRGBDDataset', 'SUN RGB-D'), else None."""
    compact = re.sub(r'[^a-z0-9]', '', str(name).lower())
    return next((family for family in _DATASET_FAMILIES if family in compact), None)


def _info_dataset_name(metainfo):
    for key in ('dataset', 'DATASET'):
        if isinstance(metainfo.get(key), str):
            return metainfo[key]
    return None


def _check_info_fits_config(info, ann_path, cfg, config_path, key, ds, phase):
    """The info file is one the config's dataset can read, has samples, and (SAM-MTP label splits) has the label
    feature width the model regresses. Errors start with the info file."""
    ds_type = str(ds.get('type', ''))
    metainfo = info['metainfo']
    info_name = _info_dataset_name(metainfo)
    is_label_split = 'feature_dim' in metainfo or 'label_format_version' in metainfo
    where = f'{key} of {config_path}'
    if ds_type == _FRAME_DATASET:
        if not is_label_split:
            described = f'an mmdet3d {info_name} info file' if info_name else 'not a SAM-MTP label split'
            raise ConfigCheckError(
                f'{ann_path}: {described} (its metainfo has no feature_dim), but {where} is a {_FRAME_DATASET}, '
                f'which reads the label splits of tools/generate_sam_labels.py (<label dir>/train_labels.pkl)')
    else:
        config_family = _dataset_family(ds_type)
        if is_label_split and config_family is not None:
            raise ConfigCheckError(
                f'{ann_path}: a SAM-MTP label split (pretraining frames), but {where} is a {ds_type}, which '
                f'reads mmdet3d\'s {_DATASET_FAMILIES[config_family]} infos (tools/create_data.py)')
        info_family = _dataset_family(info_name) if info_name else None
        if config_family is not None and info_family is not None and info_family != config_family:
            raise ConfigCheckError(
                f'{ann_path}: a {_DATASET_FAMILIES[info_family]} info file (metainfo dataset={info_name!r}), but '
                f'{where} is a {ds_type}, which reads {_DATASET_FAMILIES[config_family]} infos; point '
                f'{key}.ann_file at {_DATASET_FAMILIES[config_family]} infos or use a '
                f'{_DATASET_FAMILIES[info_family]} config')
    data_list = info['data_list']
    if not data_list:
        raise ConfigCheckError(f'{ann_path}: no samples (data_list is empty); {where} would have nothing to '
                               f'{"train on" if phase == "train" else "evaluate"}')
    if ds_type == _FRAME_DATASET:
        if ds.get('skip_empty_frames', True) and all(
                isinstance(item, dict) and item.get('num_regions', 1) == 0 for item in data_list):
            raise ConfigCheckError(
                f'{ann_path}: no samples: all {len(data_list)} frames have num_regions=0 (no SAM region), and '
                f'{where} skips such frames')
        if phase == 'train':
            _check_label_feature_dim(metainfo, ann_path, cfg, config_path)


def _check_label_feature_dim(metainfo, ann_path, cfg, config_path):
    """A model that regresses the label targets (stage 1, the joint ablation) needs
    ``projector.out_channels == feature_dim`` of the split; otherwise the first step fails on the shapes."""
    model = cfg.get('model', None) or {}
    projector = model.get('projector', None)
    if not isinstance(projector, dict) or projector.get('out_channels', None) is None:
        return
    from mmdet3d.registry import MODELS

    from projects.sam_mtp.models.algorithms.distiller import SamMtpDistiller
    model_cls = MODELS.get(model.get('type', ''))
    if not (isinstance(model_cls, type) and issubclass(model_cls, SamMtpDistiller)):
        return
    label_dim, target_dim = metainfo.get('feature_dim'), projector['out_channels']
    if label_dim is not None and int(label_dim) != int(target_dim):
        raise ConfigCheckError(
            f'{ann_path}: the labels have {label_dim}-d region features (metainfo feature_dim), but '
            f'{config_path} regresses {target_dim}-d targets (model.projector.out_channels); use labels of '
            f'the config\'s feature source or --cfg-options model.projector.out_channels={label_dim}')


_REGISTRY_KEY_ERROR = re.compile(r"(?P<name>\S+) is not in the (?P<registry>\S+) registry")


def explain_registry_error(err: Exception, config_path: str):
    """Turn mmengine's ``KeyError('X is not in the mmdet3d::model registry ...')`` into an error that names the
    config, the unknown type and the closest registered names; return None for other errors."""
    match = _REGISTRY_KEY_ERROR.search(str(err))
    if match is None:
        return None
    name, registry_name = match.group('name'), match.group('registry')
    scope, _, short = registry_name.rpartition('::')
    from mmdet3d import registry as mmdet3d_registry
    registry = {
        'model': mmdet3d_registry.MODELS, 'dataset': mmdet3d_registry.DATASETS,
        'transform': mmdet3d_registry.TRANSFORMS, 'metric': mmdet3d_registry.METRICS,
        'hook': mmdet3d_registry.HOOKS, 'optimizer': mmdet3d_registry.OPTIMIZERS,
        'parameter scheduler': mmdet3d_registry.PARAM_SCHEDULERS,
    }.get(short)
    hint = ''
    if registry is not None:
        names = list(registry.module_dict)
        for child in registry.children.values():
            names += list(child.module_dict)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if close:
            hint = f' Did you mean {", ".join(close)}?'
    return ConfigCheckError(
        f'{config_path}: unknown type "{name}" in the {registry_name} registry.{hint} If it is defined by a '
        f'plugin, add custom_imports = dict(imports=["projects.sam_mtp"], allow_failed_imports=False) to the '
        f'config.')


def setup_cpu_distributed(launcher: str, cfg: Config) -> None:
    """Make ``--launcher pytorch`` work on machines without CUDA.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and then wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``; both fail without a GPU. On CPU we start the gloo process group ourselves
    (mmengine then skips its own init) and build DDP without device ids. GPU runs are left untouched.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return
    import torch.distributed as dist
    if launcher != 'pytorch':
        raise ConfigCheckError(f'--launcher {launcher} without CUDA is not supported; use --launcher pytorch '
                               f'(tools/dist_train.sh) on CPU')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo', rank=int(os.environ['RANK']),
                                world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    # An explicit None keeps mmengine from passing device_ids=[LOCAL_RANK], which DDP rejects for CPU modules.
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def tool_parser(description: str, config_help: str, work_dir_help: str) -> argparse.ArgumentParser:
    """The parser of ``tools/train.py`` / ``tools/test.py`` with the config and ``--work-dir``; the tool adds its
    own options, then :func:`parse_tool_args` the shared ones."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help=config_help)
    parser.add_argument('--work-dir', help=work_dir_help)
    return parser


def parse_tool_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """``argv`` parsed after the options both tools take last (mmdet3d's: ``--ceph``, ``--cfg-options``,
    ``--launcher``, ``--local-rank``); ``LOCAL_RANK`` set from ``--local-rank`` unless the environment has it."""
    from mmengine.config import DictAction
    parser.add_argument('--ceph', action='store_true', help='use ceph as data storage backend')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value (e.g. model.backbone.depth=2)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK in the environment.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_runner(launcher: str, cfg: Config):
    """The config's runner (``runner_type`` or mmengine's Runner), after the CPU distributed set-up."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    setup_cpu_distributed(launcher, cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def load_tool_config(args) -> Config:
    """The config of ``tools/train.py`` / ``tools/test.py``: read, ``--cfg-options`` merged, launcher and
    ``work_dir`` set (CLI > config > ``./work_dirs/<config name>``), as mmdet3d's tools do."""
    if not osp.isfile(args.config):
        raise ConfigCheckError(f'{args.config}: config file does not exist')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def run_tool(config_path: str, body):
    """Run a tool's body; config problems, checkpoint files that cannot be loaded safely and label files that
    lack what the config needs (found when the dataset is built, before the first step) end the process with one
    readable line instead of a traceback."""
    from projects.sam_mtp.labels.formats.frame_labels import LabelFormatError

    from .checkpoint import CheckpointLoadError
    try:
        return body()
    except (ConfigCheckError, CheckpointLoadError, LabelFormatError) as err:
        sys.exit(f'error: {err}')
    except KeyError as err:
        explained = explain_registry_error(err, config_path)
        if explained is None:
            raise
        sys.exit(f'error: {explained}')
