"""Why is the demo's stage-2 encoder below its stage-1 teacher in the frozen-feature probe? Small experiments on
a finished demo's data and stage-1 checkpoints, paired by seed:

* schedule: stage 2 for 60 epochs instead of 30, probed every 10 epochs;
* target normalisation: stage 2 with LayerNorm-ed teacher targets (``model.target_norm=True``, the q6 ablation);
* initialisation: the stage-2 student starts from the stage-1 encoder (q6 ablation ``student-init-teacher``);
* layer: the probe reads the token embedding, the output of each transformer block, or the final LayerNorm
  (the default) of the random-init, stage-1 and stage-2 encoders.

    python benchmarks/demo_stage2_study.py [--work-dir work_dirs/demo] [--data-root data/demo/scannet] \
        [--seeds 0 1 2] [--out docs/bench_runs/demo_stage2_study.json]

Every training run is a ``tools/train.py`` run of
configs/sam_mtp/demo/sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py with ``--cfg-options``,
logged and resumable like the demo's steps (``<work-dir>/study/``); the probe is the demo's
(projects/sam_mtp/evaluation/linear_probe.py on the demo's segmentation config).
"""
import argparse
import copy
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from projects.sam_mtp.demo.settings import DEMO_CONFIGS, PROBE_CONFIG, REPO_ROOT, DemoSettings  # noqa: E402

LONG_EPOCHS = 60
# Probe layers: how many transformer blocks run, and whether the final LayerNorm is applied.
LAYERS = {'embedding': (0, False), 'block 1': (1, False), 'block 2': (2, False), 'final LN': (None, True)}


def variants(stage1_checkpoint):
    """name -> extra --cfg-options of the demo's stage-2 config for one seed."""
    return {
        f'stage2 {LONG_EPOCHS}e': [f'train_cfg.max_epochs={LONG_EPOCHS}', f'param_scheduler.1.T_max={LONG_EPOCHS - 1}',
                                   f'param_scheduler.1.end={LONG_EPOCHS}', 'default_hooks.checkpoint.interval=10',
                                   f'default_hooks.checkpoint.max_keep_ckpts={LONG_EPOCHS // 10}'],
        'stage2 target LN': ['model.target_norm=True'],
        'stage2 student from stage1': ['model.backbone.init_cfg.type=Pretrained',
                                       f'model.backbone.init_cfg.checkpoint={stage1_checkpoint}',
                                       'model.backbone.init_cfg.prefix=backbone.'],
    }


def truncated(backbone, blocks, final_norm):
    """A copy of a frozen SamMtpPointBackbone whose encoder stops after ``blocks`` blocks (None: all), with or
    without the final LayerNorm."""
    import torch
    out = copy.deepcopy(backbone)
    stack = out.encoder.encoder
    if blocks is not None:
        stack.blocks = torch.nn.ModuleList(list(stack.blocks)[:blocks])
    if not final_norm:
        stack.norm = torch.nn.Identity()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'demo'))
    parser.add_argument('--data-root', default=osp.join('data', 'demo', 'scannet'))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--out', default=osp.join('docs', 'bench_runs', 'demo_stage2_study.json'))
    args = parser.parse_args(argv)
    if not osp.isdir(osp.join(args.data_root, 'sam_mtp_labels')):
        sys.exit(f'error: {args.data_root}/sam_mtp_labels does not exist; run the demo first (make demo)')

    from projects.sam_mtp.demo.runner import Demo
    demo = Demo(DemoSettings(work_dir=args.work_dir, data_root=args.data_root, seeds=args.seeds))
    demo.pretrain()  # finished in the demo: only reads the checkpoints
    encoders = {}  # (name, seed) -> checkpoint
    for seed in args.seeds:
        encoders[('stage1', seed)] = demo.stage1_ckpts[seed]
        encoders[('stage2', seed)] = demo.stage2_ckpts[seed]
        for name, options in variants(demo.stage1_ckpts[seed]).items():
            run_dir = osp.join(args.work_dir, 'study', f'seed{seed}', name.replace(' ', '_'))
            demo.run(f'study_{name.replace(" ", "_")}_seed{seed}', demo.tool(
                'train.py',
                osp.join(DEMO_CONFIGS, 'sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'),
                '--work-dir', run_dir, '--cfg-options',
                f'model.teacher_checkpoint={demo.stage1_ckpts[seed]}', *demo.pretrain_options(seed), *options),
                f'study seed {seed}: {name}')
            if name == f'stage2 {LONG_EPOCHS}e':
                for epoch in range(10, LONG_EPOCHS + 1, 10):
                    encoders[(f'{name} @{epoch}', seed)] = osp.join(run_dir, f'epoch_{epoch}.pth')
            else:
                encoders[(name, seed)] = demo.last_checkpoint(run_dir)

    from mmengine.config import Config

    import projects.sam_mtp  # noqa: F401
    from projects.sam_mtp.demo import report
    from projects.sam_mtp.engine.provenance import cpu_model, git_commit
    from projects.sam_mtp.evaluation.linear_probe import (
        build_frozen_backbone,
        build_probe_datasets,
        load_scenes,
        probe_encoder,
    )
    cfg = Config.fromfile(PROBE_CONFIG)
    root = args.data_root.rstrip('/') + '/'
    cfg.merge_from_dict({'train_dataloader.dataset.data_root': root, 'test_dataloader.dataset.data_root': root})
    train_set, test_set = build_probe_datasets(cfg)
    head = cfg.model.decode_head
    classes = list(train_set.metainfo['classes'])[:head['num_classes']]
    ignore = head.get('ignore_index', len(classes))
    train_scenes, test_scenes = load_scenes(train_set), load_scenes(test_set)
    runs = []

    def probe(name, seed, checkpoint, layer='final LN'):
        start = time.time()
        backbone = truncated(build_frozen_backbone(cfg, checkpoint, seed), *LAYERS[layer])
        metrics = probe_encoder(backbone, train_scenes, test_scenes, classes, ignore)
        init = name if layer == 'final LN' else f'{name} [{layer}]'
        runs.append(dict(task='probe', init=init, seed=seed, fraction=1.0,
                         metrics={k: metrics[k] for k in ('miou', 'acc')}))
        print(f'{init} seed {seed}: mIoU {metrics["miou"]:.4f} acc {metrics["acc"]:.4f} '
              f'({time.time() - start:.0f} s)', flush=True)

    for seed in args.seeds:
        for layer in LAYERS:
            probe('random-init', seed, None, layer)
            probe('stage1', seed, encoders[('stage1', seed)], layer)
            probe('stage2', seed, encoders[('stage2', seed)], layer)
        for (name, s), checkpoint in encoders.items():
            if s == seed and name not in ('stage1', 'stage2'):
                probe(name, seed, checkpoint)
    names = list(dict.fromkeys(r['init'] for r in runs))
    metrics = {'probe': ('miou', 'acc')}
    summary = {n: {m: report.t_interval([r['metrics'][m] for r in runs if r['init'] == n]) for m in metrics['probe']}
               for n in names}
    comparisons = [c for n in names for b in ('stage1', 'stage2') if n != b
                   for c in report.paired_comparisons(runs, metrics, a=n, b=b)]
    commit, dirty = git_commit(where=REPO_ROOT)
    out = dict(command=' '.join(['python benchmarks/demo_stage2_study.py'] + list(argv or sys.argv[1:])),
               cpu=cpu_model(), commit=commit, dirty=dirty, seeds=args.seeds, long_epochs=LONG_EPOCHS,
               layers=list(LAYERS), runs=runs, summary=summary, comparisons=comparisons,
               timings_s=dict(demo.timings))
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
