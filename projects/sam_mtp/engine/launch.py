"""Shared start-up of ``tools/train.py`` and ``tools/test.py``: config checks with readable errors, and
distributed set-up that also works on CPU-only machines (gloo)."""
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
    if dataset_cfg is None:
        return
    if isinstance(dataset_cfg, (list, tuple)):
        for item in dataset_cfg:
            yield from _iter_dataset_cfgs(item)
        return
    nested = dataset_cfg.get('dataset', None) or dataset_cfg.get('datasets', None)
    if nested is not None:
        yield from _iter_dataset_cfgs(nested)
    else:
        yield dataset_cfg


def _resolve_ann_file(dataset_cfg):
    ann_file = dataset_cfg.get('ann_file', None)
    if not ann_file:
        return None
    data_root = dataset_cfg.get('data_root', None) or ''
    return ann_file if osp.isabs(ann_file) or not data_root else osp.join(data_root, ann_file)


def check_dataset_files(cfg: Config, config_path: str, phases=('train', 'val', 'test')) -> None:
    """Fail early, naming the config, when a dataset root or annotation file is missing or malformed.

    Without this the failure surfaces deep inside a dataloader worker as a bare ``FileNotFoundError``.
    """
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader', None)
        if not loader:
            continue
        for ds in _iter_dataset_cfgs(loader.get('dataset', None)):
            data_root = ds.get('data_root', None)
            if data_root and not osp.isdir(data_root):
                raise ConfigCheckError(
                    f'{config_path}: {phase}_dataloader dataset {ds.get("type")} has data_root '
                    f'"{data_root}", which does not exist (cwd {os.getcwd()}). Prepare the data (see README '
                    f'"Data preparation") or override it with --cfg-options {phase}_dataloader.dataset.'
                    f'data_root=PATH')
            ann_path = _resolve_ann_file(ds)
            if ann_path is None:
                continue
            if not osp.isfile(ann_path):
                raise ConfigCheckError(
                    f'{config_path}: {phase}_dataloader dataset {ds.get("type")} annotation file '
                    f'"{ann_path}" does not exist')
            if ann_path.endswith('.pkl'):
                _check_info_pickle(ann_path, config_path, phase)


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
