"""The README's main job: the whole SAM-MTP pipeline on bundled (generated) demo data, on CPU.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/demo/scannet] [--seeds 0 1 2] [--fresh]

Steps (each resumable: a finished step leaves a marker and is skipped on the next run):
  1. synthetic ScanNet-format scenes + posed RGB-D frames            tools/make_synthetic_data.py
  2. offline labels with STAND-IN sources (instance images as masks, class embedding + noise as features)
                                                                        tools/generate_sam_labels.py
  3. stage 1 (region distillation), 4. stage 2 (masked token prediction)      tools/train.py
  5. fine-tuning from the stage-2 checkpoint and from scratch, several seeds, evaluated with mmdet3d's
     metrics                                                            tools/train.py + tools/test.py
  6. report: work_dirs/demo/report.{md,json} and pictures (loss curves, tokens, feature PCA)

Every step runs the same command-line tools a user runs; their full logs are in <work-dir>/logs/.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIGS = osp.join('configs', 'sam_mtp', 'demo')

# Lines of a tool's output that are worth showing live; everything goes to the step's log file.
PROGRESS = re.compile(r'mmengine - (INFO|WARNING|ERROR) - (Epoch\(train\).*\]\[\s*(\d+)/\3\]|wrote|merged|'
                      r'shard|scene\d+_\d+: \d+ segments|\[finetune\])|Error')

# Fine-tuning tasks of the demo: the synthetic-scale twins of the paper's downstream configs.
FINETUNE_CONFIGS = {
    'groupfree3d': osp.join('configs', 'sam_mtp', 'finetune', 'synthetic',
                            'groupfree3d_sam-mtp-ft_synthetic-scannet-3d.py'),
    '3detr': osp.join('configs', 'sam_mtp', 'finetune', 'synthetic', '3detr_sam-mtp-ft_synthetic-scannet-3d.py'),
    'seg': osp.join('configs', 'sam_mtp', 'finetune', 'synthetic', 'tokenseg_sam-mtp-ft_synthetic-scannet-seg.py'),
}
# Metrics in the report: detection mAP over the classes present in the demo's val scenes (see
# engine.report.mean_over_present_classes), segmentation mIoU / accuracy from mmdet3d's SegMetric.
REPORT_METRICS = {'groupfree3d': ('AP25', 'AP50'), '3detr': ('AP25', 'AP50'), 'seg': ('miou', 'acc')}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', default=osp.join('work_dirs', 'demo'))
    parser.add_argument('--data-root', default=osp.join('data', 'demo', 'scannet'))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='fine-tuning seeds (the report gives mean and spread over them)')
    parser.add_argument('--tasks', nargs='+', default=['groupfree3d', '3detr', 'seg'],
                        choices=['groupfree3d', '3detr', 'seg'])
    parser.add_argument('--fresh', action='store_true', help='ignore finished-step markers and redo everything')
    parser.add_argument('--finetune-epochs', type=int, default=30,
                        help='max_epochs of every fine-tuning run (the synthetic configs\' own is a 2-epoch smoke run)')
    # Internal: the fine-tuning runs share one process (one import of the stack instead of one per run).
    parser.add_argument('--finetune-worker', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--pretrained', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


class Demo:

    def __init__(self, args):
        self.args = args
        self.work_dir = args.work_dir
        self.data_root = args.data_root
        self.log_dir = osp.join(self.work_dir, 'logs')
        os.makedirs(self.log_dir, exist_ok=True)
        self.t0 = time.time()
        self.timings = {}

    # ------------------------------------------------------------------ running steps
    def _marker(self, name):
        return osp.join(self.work_dir, 'done', name)

    def run(self, name, cmd, title):
        """Run one tool as a subprocess, streaming progress lines; skip when its marker exists."""
        marker = self._marker(name)
        if osp.exists(marker) and not self.args.fresh:
            self._say(f'{title}: already done (delete {marker} to redo)')
            return
        log_path = osp.join(self.log_dir, f'{name}.log')
        self._say(f'{title} (log: {log_path})')
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''),
                   PYTHONUNBUFFERED='1')
        start = time.time()
        with open(log_path, 'w') as log:
            log.write('$ ' + ' '.join(cmd) + '\n')
            proc = subprocess.Popen(cmd, cwd=os.getcwd(), env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1)
            for line in proc.stdout:
                log.write(line)
                if PROGRESS.search(line):
                    text = line.split(' - ', 2)[-1].rstrip()
                    print('    ' + (text if len(text) < 170 else text[:167] + '...'), flush=True)
            code = proc.wait()
        self.timings[name] = round(time.time() - start, 1)
        if code != 0:
            with open(log_path) as f:
                tail = f.readlines()[-25:]
            sys.exit(f'demo step "{title}" failed with exit code {code}; last lines of {log_path}:\n'
                     + ''.join(tail))
        os.makedirs(osp.dirname(marker), exist_ok=True)
        with open(marker, 'w') as f:
            f.write(f'{self.timings[name]} s\n')

    def _say(self, text):
        elapsed = time.time() - self.t0
        print(f'[demo {int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] {text}', flush=True)

    def tool(self, script, *args):
        return [sys.executable, osp.join(ROOT, 'tools', script), *map(str, args)]

    # ------------------------------------------------------------------ the pipeline
    def data_and_labels(self):
        root = self.data_root
        self.run('data', self.tool('make_synthetic_data.py', '--out', root, '--splits', 'train:12,val:4',
                                   '--frames-per-scene', 10, '--seed', 0),
                 '1/6 synthetic ScanNet-format scenes and posed RGB-D frames')
        labels = osp.join(root, 'sam_mtp_labels')
        common = ['--frames-root', osp.join(root, 'posed_images'), '--out-dir', labels,
                  '--axis-align-root', osp.join(root, 'scans'), '--no-progress']
        self.run('labels_train', self.tool(
            'generate_sam_labels.py', 'configs/sam_mtp/labels/demo_class_targets.py', '--split', 'train',
            '--split-file', osp.join(root, 'meta_data', 'scannetv2_train.txt'), *common),
            '2/6 labels (STAND-IN masks: instance images; STAND-IN features: class embedding + noise), train')
        # Val frames reuse train's K-means groups; their scene segments feed SAM-guided tokens at test time.
        self.run('labels_val', self.tool(
            'generate_sam_labels.py', 'configs/sam_mtp/labels/demo_class_targets.py', '--split', 'val',
            '--split-file', osp.join(root, 'meta_data', 'scannetv2_val.txt'),
            '--groups-from', osp.join(labels, 'train_groups.json'), *common),
            '2/6 labels, val')
        # Scene segments of the train and val scenes from the labels' region maps: SAM-guided tokens in fine-tuning.
        self.run('segments', self.tool(
            'make_scene_segments.py', 'configs/sam_mtp/segments/demo_scannet_stand_in.py', '--data-root', root,
            '--info', osp.join(root, 'scannet_infos_train.pkl'), osp.join(root, 'scannet_infos_val.pkl'),
            '--frames-root', osp.join(root, 'posed_images'), '--labels-dir', labels, '--no-progress'),
            '2/6 scene segments (multi-view merge of the labels\' region maps), train + val')

    def pretrain(self):
        stage1_dir = osp.join(self.work_dir, 'stage1')
        self.run('stage1', self.tool('train.py', osp.join(DEMO_CONFIGS, 'stage1_demo.py'), '--work-dir', stage1_dir),
                 '3/6 stage 1: SAM-guided tokens -> transformer -> group-balanced region distillation')
        self.stage1_ckpt = self._last_checkpoint(stage1_dir)
        stage2_dir = osp.join(self.work_dir, 'stage2')
        self.run('stage2', self.tool('train.py', osp.join(DEMO_CONFIGS, 'stage2_demo.py'), '--work-dir', stage2_dir,
                                     '--cfg-options', f'model.teacher_checkpoint={self.stage1_ckpt}'),
                 '4/6 stage 2: masked token prediction from the frozen stage-1 teacher')
        self.stage2_ckpt = self._last_checkpoint(stage2_dir)

    def finetune(self):
        self.run('finetune', [sys.executable, osp.abspath(__file__), '--finetune-worker', '--work-dir',
                              self.work_dir, '--pretrained', self.stage2_ckpt, '--tasks', *self.args.tasks,
                              '--seeds', *map(str, self.args.seeds)]
                 + (['--finetune-epochs', str(self.args.finetune_epochs)] if self.args.finetune_epochs else [])
                 + (['--fresh'] if self.args.fresh else []),
                 f'5/6 fine-tuning {", ".join(self.args.tasks)} from the stage-2 encoder and from scratch, '
                 f'seeds {self.args.seeds}, evaluated with mmdet3d\'s metrics')

    def report(self):
        from projects.sam_mtp.engine import report
        self._say('6/6 report')
        runs = []
        for path in sorted(glob.glob(osp.join(self.work_dir, 'finetune', '*', 'result.json'))):
            with open(path) as f:
                runs.append(json.load(f))
        names = sorted({m for ms in REPORT_METRICS.values() for m in ms})
        table = report.summarize_runs(runs, names)
        markdown = report.markdown_table(table, REPORT_METRICS)
        curves = {}
        for stage in ('stage1', 'stage2'):
            log = report.find_log(osp.join(self.work_dir, stage))
            if log:
                curves[stage] = report.parse_train_losses(log)
        pictures = dict(loss_curves=osp.join(self.work_dir, 'loss_curves.png'),
                        tokens_and_features=osp.join(self.work_dir, 'tokens_and_features.png'))
        report.plot_loss_curves(curves, pictures['loss_curves'])
        self._token_pictures(pictures['tokens_and_features'])
        summary = dict(
            note=('Synthetic scenes and STAND-IN labels (instance images as SAM masks, class embedding + noise as DINOv2): '
                  'the numbers show the pipeline and the effect of pretraining at demo scale, not ScanNet results.'),
            seeds=self.args.seeds, rows=list(table.values()), runs=runs, timings_s=self.timings,
            total_minutes=round((time.time() - self.t0) / 60, 2), pictures=pictures,
            loss_first_last={s: {k: [v[0], v[-1]] for k, v in c.items() if k != 'iter' and v}
                             for s, c in curves.items()})
        with open(osp.join(self.work_dir, 'report.json'), 'w') as f:
            json.dump(summary, f, indent=1)
        header = ('# sam_mtp demo: pretrained (stage 2) vs scratch\n\n' + summary['note'] + '\n\n'
                  'Detection AP: mean over the classes present in the val scenes (mmdet3d IndoorMetric per-class '
                  'AP); segmentation: mmdet3d SegMetric.\n\n')
        with open(osp.join(self.work_dir, 'report.md'), 'w') as f:
            f.write(header + markdown + f'\nPictures: {pictures["loss_curves"]}, '
                    f'{pictures["tokens_and_features"]}\n')
        print('\n' + markdown)
        self._say(f'done: {osp.join(self.work_dir, "report.md")} (total {summary["total_minutes"]} min)')

    def _token_pictures(self, out_png):
        """One val frame: its points coloured by SAM-guided token and by a PCA of stage-2 vs random features."""
        import torch
        from mmengine.config import Config
        from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
        import projects.sam_mtp  # noqa: F401
        from mmdet3d.registry import MODELS
        from projects.sam_mtp.engine import report
        from projects.sam_mtp.labels.format import load_frame_labels, load_label_info
        label_root = osp.join(self.data_root, 'sam_mtp_labels')
        info = load_label_info(osp.join(label_root, 'val_labels.pkl'))
        item = max(info['data_list'], key=lambda d: d['num_regions'])
        frame = load_frame_labels(osp.join(label_root, item['label_path']))
        cfg = Config.fromfile(osp.join(DEMO_CONFIGS, 'stage2_demo.py'))
        points = torch.from_numpy(frame['points'])[None]
        region = torch.from_numpy(frame['point_region']).long()[None]
        token_rgb = {}
        for name, ckpt in (('stage-2', self.stage2_ckpt), ('random-init', None)):
            torch.manual_seed(0)
            tokenizer, backbone = MODELS.build(cfg.model.tokenizer).eval(), MODELS.build(cfg.model.backbone).eval()
            if ckpt:
                backbone.load_state_dict(_load_checkpoint_with_prefix('backbone.', ckpt, map_location='cpu'))
            with torch.no_grad():
                tokens = tokenizer(points - points.mean(1, keepdim=True), region)
                feats = backbone(tokens)[0][~tokens.padding_mask[0]].numpy()
            token_rgb[name] = report.pca_colors(feats)
        report.plot_token_pictures(frame['points'], frame['colors'].astype(float), tokens.point_token[0].numpy(),
                                   token_rgb, out_png, title=f'{item["scene_id"]} frame {item["frame_id"]}')

    @staticmethod
    def _last_checkpoint(work_dir):
        pointer = osp.join(work_dir, 'last_checkpoint')
        if not osp.isfile(pointer):
            sys.exit(f'{work_dir}: no last_checkpoint file; did training finish?')
        with open(pointer) as f:
            return f.read().strip()


def main(argv=None):
    args = parse_args(argv)
    if args.finetune_worker:
        return finetune_worker(args)
    demo = Demo(args)
    demo.data_and_labels()
    demo.pretrain()
    demo.finetune()
    demo.report()


def _finetune_metrics(task, metrics):
    from projects.sam_mtp.engine.report import mean_over_present_classes
    if task == 'seg':
        return {k: float(metrics[k]) for k in ('miou', 'acc', 'acc_cls') if k in metrics}
    return dict(AP25=mean_over_present_classes(metrics, '_AP_0.25'),
                AP50=mean_over_present_classes(metrics, '_AP_0.50'),
                mAP_0_25_mmdet3d=float(metrics.get('mAP_0.25', float('nan'))))


def finetune_worker(args):
    """Fine-tune every (task, init, seed) in this one process and write one metrics json per run."""
    import projects.sam_mtp  # noqa: F401
    from mmengine.config import Config
    from mmengine.logging import print_log
    from mmengine.runner import Runner

    from projects.sam_mtp.labels.fileio import atomic_write
    out_root = osp.join(args.work_dir, 'finetune')
    for task in args.tasks:
        for init in ('pretrained', 'scratch'):
            for seed in args.seeds:
                name = f'{task}_{init}_seed{seed}'
                run_dir = osp.join(out_root, name)
                result_path = osp.join(run_dir, 'result.json')
                if osp.isfile(result_path) and not args.fresh:
                    print_log(f'[finetune] {name}: already done', logger='current')
                    continue
                start = time.time()
                cfg = Config.fromfile(FINETUNE_CONFIGS[task])
                cfg.work_dir = run_dir
                cfg.experiment_name = name
                cfg.randomness = dict(seed=seed)
                if args.finetune_epochs:
                    cfg.train_cfg.max_epochs = args.finetune_epochs
                # Evaluate once, after training, on the val split (the test dataloader of these configs).
                cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1
                backbone = cfg.model.backbone
                if init == 'scratch':
                    backbone.init_cfg = None
                else:
                    backbone.init_cfg = dict(type='Pretrained', checkpoint=args.pretrained, prefix='backbone.')
                runner = Runner.from_cfg(cfg)
                runner.train()
                metrics = runner.test()
                result = dict(task=task, init=init, seed=seed, seconds=round(time.time() - start, 1),
                              metrics=_finetune_metrics(task, metrics),
                              raw_metrics={k: float(v) for k, v in metrics.items()
                                           if isinstance(v, (int, float))})
                # result.json marks the run as done for a rerun: write it atomically.
                atomic_write(result_path, lambda f: f.write(json.dumps(result, indent=1).encode()))
                shown = ', '.join(f'{k} {v:.3f}' for k, v in result['metrics'].items())
                print_log(f'[finetune] {name}: {shown} ({result["seconds"]} s)', logger='current')


if __name__ == '__main__':
    main()
