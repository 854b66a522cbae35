"""The demo's fine-tuning runs: which runs (task, fraction of the training scenes, seed, initialisation), the
config of each (the task's synthetic config with the demo's data, seed, epochs and training subset), and the
worker that trains and evaluates them all in one process.

The worker runs as ``python -m projects.sam_mtp.demo.finetune JOBS_JSON --work-dir W --data-root D
--finetune-epochs N [--fresh]`` (the demo starts it; one process keeps the imports of many short runs).
"""
import argparse
import copy
import functools
import json
import os.path as osp
import resource
import time
from typing import Dict, List, Optional, Sequence

from .settings import FINETUNE_CONFIGS


def finetune_jobs(tasks: Sequence[str], label_task: str, label_fractions: Sequence[float], seeds: Sequence[int],
                  encoders: Dict[str, Dict[int, str]]) -> List[dict]:
    """Every fine-tuning run of the demo: (task, fraction) x seed x {each pretrained encoder, scratch}.

    ``encoders``: run label (the report's ``init``, e.g. ``'pretrained'`` for SAM-MTP) -> seed -> checkpoint.
    """
    settings = [(task, 1.0) for task in tasks]
    settings += [(label_task, f) for f in sorted(label_fractions, reverse=True)]
    jobs = []
    for task, fraction in settings:
        for seed in seeds:
            for init in list(encoders) + ['scratch']:
                tag = '' if fraction == 1.0 else f'_{round(100 * fraction)}pct'
                jobs.append(dict(name=f'{task}{tag}_{init}_seed{seed}', task=task, fraction=fraction, init=init,
                                 seed=seed, checkpoint=encoders[init][seed] if init != 'scratch' else None))
    return jobs


def training_subset(num_scenes: int, fraction: float, seed: int) -> List[int]:
    """Indices of the labelled training scenes of a label-efficiency run: the first ``max(1, round(fraction *
    num_scenes))`` of a permutation drawn from ``seed``, so both runs of a pair use the same scenes and a
    seed's smaller subsets lie inside its larger ones."""
    import numpy as np
    count = max(1, int(round(fraction * num_scenes)))
    return sorted(np.random.default_rng(seed).permutation(num_scenes)[:count].tolist())


@functools.lru_cache(maxsize=None)
def _task_config(task: str):
    """The task's synthetic config, read once per process. Its text is left unformatted: mmengine formats it with
    yapf ~5 times per run (log, dump, hooks, checkpoint meta), which costs more than a tiny run's evaluation; the
    text stays valid Python. (Config.fromfile drops its format_python_code argument for plain configs in mmengine
    0.10.7, hence the copy.)"""
    from mmengine.config import Config
    loaded = Config.fromfile(FINETUNE_CONFIGS[task])
    return Config(loaded.to_dict(), cfg_text=loaded.text, filename=loaded.filename, format_python_code=False)


def finetune_config(job: dict, data_root: str, epochs: int):
    """The config of one fine-tuning run: the task's synthetic config with the demo's data root, seed,
    initialisation, epochs and (label efficiency) training subset."""
    import mmengine
    import numpy as np

    from projects.sam_mtp.engine.launch import _iter_dataset_cfgs
    cfg = copy.deepcopy(_task_config(job['task']))
    root = data_root.rstrip('/') + '/'
    for phase in ('train', 'val', 'test'):
        for dataset in _iter_dataset_cfgs(cfg[f'{phase}_dataloader'].dataset):
            dataset.data_root = root
            # No worker processes, so nothing to share: skip mmengine's serialisation and its gc.collect(), which
            # takes seconds in a process that has already run many fine-tunings.
            dataset.serialize_data = False
    # Unique: mmengine keeps one logger per experiment name and process, and a redone run must get its own log.
    cfg.experiment_name = f"{job['name']}_{time.strftime('%Y%m%d_%H%M%S')}_{time.monotonic_ns() % 10**9:09d}"
    # The same for the visualizer (mmdet3d names it 'visualizer'): one instance per run, writing to its own folder.
    if cfg.get('visualizer'):
        cfg.visualizer.name = cfg.experiment_name
    # Deterministic kernels where torch has them; pretrained and scratch runs of a pair draw the same numbers
    # (the encoder is initialised, then overwritten by the checkpoint, before the head is).
    cfg.randomness = dict(seed=job['seed'], deterministic=True)
    cfg.train_cfg.max_epochs = epochs
    # Evaluate once, after training, on the val split (the test dataloader of these configs): no validation loop
    # (mmengine validates at the last epoch whatever the interval, which evaluated every run twice), one
    # checkpoint at the end, a log line every 10 iterations. None of this changes the trained weights.
    cfg.train_cfg.val_interval = epochs + 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.logger.interval = 10
    backbone = cfg.model.backbone
    if job['init'] == 'scratch':
        backbone.init_cfg = None
    else:
        backbone.init_cfg = dict(type='Pretrained', checkpoint=job['checkpoint'], prefix='backbone.')
    if job['fraction'] < 1.0:
        loader = cfg.train_dataloader
        wrapped = loader.dataset.get('type') == 'RepeatDataset'
        dataset = loader.dataset.dataset if wrapped else loader.dataset
        infos = mmengine.load(osp.join(root, dataset.ann_file))['data_list']
        subset = training_subset(len(infos), job['fraction'], job['seed'])
        # The same number of iterations as on all scenes: the subset is repeated.
        repeat = max(1, int(round(len(infos) / len(subset))))
        if 'scene_idxs' in dataset:  # ScanNetSegDataset draws patches by a resampled scene index
            idxs = dataset.scene_idxs
            idxs = np.load(osp.join(root, idxs)) if isinstance(idxs, str) else np.asarray(idxs)
            dataset.scene_idxs = np.tile(idxs[np.isin(idxs, subset)], repeat).tolist()
        else:
            dataset.indices = subset
            if wrapped:
                loader.dataset.times = loader.dataset.get('times', 1) * repeat
            else:
                loader.dataset = dict(type='RepeatDataset', times=repeat, dataset=dataset)
    return cfg


def finetune_metrics(task: str, metrics: dict) -> Dict[str, float]:
    """The report's metrics of one run from mmdet3d's evaluator output: detection AP over the classes present,
    segmentation mIoU / accuracy."""
    from .report import mean_over_present_classes
    if task == 'seg':
        return {k: float(metrics[k]) for k in ('miou', 'acc', 'acc_cls') if k in metrics}
    return dict(AP25=mean_over_present_classes(metrics, '_AP_0.25'),
                AP50=mean_over_present_classes(metrics, '_AP_0.50'),
                mAP_0_25_mmdet3d=float(metrics.get('mAP_0.25', float('nan'))))


def cpu_seconds(who: int) -> float:
    """User + system CPU seconds of ``resource.RUSAGE_SELF`` or ``RUSAGE_CHILDREN``."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def finetune_worker(jobs_file: str, work_dir: str, data_root: str, epochs: int, fresh: bool = False) -> None:
    """Fine-tune every job of ``jobs_file`` in this one process and write one result.json per run."""
    from mmengine.logging import print_log
    from mmengine.runner import Runner

    import projects.sam_mtp  # noqa: F401
    from projects.sam_mtp.labels.fileio import atomic_write
    with open(jobs_file) as f:
        jobs = json.load(f)
    for job in jobs:
        run_dir = osp.join(work_dir, 'finetune', job['name'])
        result_path = osp.join(run_dir, 'result.json')
        if osp.isfile(result_path) and not fresh:
            print_log(f'[finetune] {job["name"]}: already done', logger='current')
            continue
        start, cpu = time.time(), cpu_seconds(resource.RUSAGE_SELF)
        cfg = finetune_config(job, data_root, epochs)
        cfg.work_dir = run_dir
        runner = Runner.from_cfg(cfg)
        runner.train()
        metrics = runner.test()
        result = dict(job, seconds=round(time.time() - start, 1),
                      cpu_seconds=round(cpu_seconds(resource.RUSAGE_SELF) - cpu, 1),
                      metrics=finetune_metrics(job['task'], metrics),
                      raw_metrics={k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        # result.json marks the run as done for a rerun: write it atomically.
        atomic_write(result_path, lambda f: f.write(json.dumps(result, indent=1).encode()))
        shown = ', '.join(f'{k} {v:.3f}' for k, v in result['metrics'].items())
        print_log(f'[finetune] {job["name"]}: {shown} ({result["seconds"]} s)', logger='current')


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='the demo\'s fine-tuning worker (tools/demo.py starts it)')
    parser.add_argument('jobs_file', help='JSON list of jobs (finetune_jobs)')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--data-root', required=True)
    parser.add_argument('--finetune-epochs', type=int, required=True)
    parser.add_argument('--fresh', action='store_true', help='redo runs whose result.json exists')
    args = parser.parse_args(argv)
    finetune_worker(args.jobs_file, args.work_dir, args.data_root, args.finetune_epochs, args.fresh)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
