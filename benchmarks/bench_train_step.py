"""Training step time and peak memory of stage 1 and stage 2 at the paper's model size, on CPU (or CUDA).

    python benchmarks/bench_train_step.py [--points 20000] [--batch 4] [--steps 5] [--device cpu] [--out f.json]

Each stage is measured in its own subprocess so that its peak resident memory (CPU) or peak allocated memory
(CUDA) is its own. The model is built from configs/sam_mtp/pretrain/sam-mtp-stage{1,2}_*.py unchanged (3 blocks,
256-d, SAM-guided tokens of 128 points, at most 128 tokens); inputs are synthetic frames with ~100 regions.
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # docs_tables

from docs_tables import atomic_write_text, finish_stamp, run_stamp  # noqa: E402


def measure_stage(stage, args):
    import torch
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import projects.sam_mtp  # noqa: F401
    from projects.sam_mtp.testing import region_batch

    torch.set_num_threads(args.threads)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'sam_mtp', 'pretrain',
                                   f'sam-mtp-stage{stage}_plain-transformer_4xb16-120e_scannet-frames.py'))
    device = torch.device(args.device)
    if stage == 2:
        # The teacher's weights do not change the cost of a step: save a random stage-1 model as its checkpoint.
        teacher = MODELS.build(cfg.model.teacher)
        ckpt = osp.join(args.tmp_dir, 'stage1_random.pth')
        torch.save(dict(state_dict=teacher.state_dict(), meta={}), ckpt)
        cfg.model.teacher_checkpoint = ckpt
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    feature_dim = cfg.model.get('projector', cfg.model.get('teacher', {}).get('projector', {})).get(
        'out_channels', 768)
    gen = torch.Generator().manual_seed(0)
    batch = region_batch(args.batch, args.points, args.regions, feature_dim, 32, gen)
    times = []
    for step in range(args.steps + 1):
        data = model.data_preprocessor(dict(inputs=batch[0], data_samples=batch[1]), True)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        optim.update_params(loss)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if step > 0:  # the first step pays for allocator warm-up
            times.append(time.perf_counter() - start)
    if device.type == 'cuda':
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times.sort()
    return dict(stage=stage, device=args.device, batch=args.batch, points=args.points, regions=args.regions,
                threads=args.threads, step_s_median=times[len(times) // 2], step_s_min=times[0],
                peak_memory_mb=round(peak_mb, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--points', type=int, default=20000)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--regions', type=int, default=100)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--stage', type=int, choices=[1, 2], help=argparse.SUPPRESS)
    parser.add_argument('--tmp-dir', default=osp.join('work_dirs', 'benchmarks'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.makedirs(args.tmp_dir, exist_ok=True)
    if args.stage:  # worker
        print(json.dumps(measure_stage(args.stage, args)))
        return
    stamp = run_stamp('bench_train_step.py', argv)
    results = []
    for stage in (1, 2):
        cmd = [sys.executable, __file__, '--stage', str(stage)] + [
            a for k in ('points', 'batch', 'regions', 'steps', 'threads', 'device', 'tmp_dir')
            for a in (f'--{k.replace("_", "-")}', str(getattr(args, k)))]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
        if out.returncode != 0:
            sys.exit(f'stage {stage} failed:\n{out.stderr[-3000:]}')
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print('| stage | device | batch x points | step time (median) | peak memory |')
    print('|---|---|---|---|---|')
    for r in results:
        print(f'| {r["stage"]} | {r["device"]} ({r["threads"]} threads) | {r["batch"]} x {r["points"]} | '
              f'{r["step_s_median"]:.3f} s | {r["peak_memory_mb"]:.0f} MB |')
    if args.out:
        run = dict(stamp=finish_stamp(stamp), steps=args.steps, stages=results)
        atomic_write_text(args.out, json.dumps(run, indent=1))


if __name__ == '__main__':
    main()
