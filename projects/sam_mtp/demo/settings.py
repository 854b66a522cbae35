"""What the demo runs: its settings (one dataclass, the defaults of ``tools/demo.py``'s options), the configs it
reads, the label sources it can use and the metrics it reports."""
import dataclasses
import os.path as osp
from typing import List, Optional

# Configs are found from the repository, so the demo runs from any folder (data and work dirs are relative to it).
REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = osp.join(REPO_ROOT, 'configs', 'sam_mtp')
DEMO_CONFIGS = osp.join(CONFIGS, 'demo')

# Fine-tuning tasks of the demo: the synthetic-scale twins of the paper's downstream configs.
FINETUNE_CONFIGS = {
    'groupfree3d': osp.join(DEMO_CONFIGS, 'groupfree3d_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py'),
    '3detr': osp.join(DEMO_CONFIGS, 'threedetr_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py'),
    'seg': osp.join(DEMO_CONFIGS, 'tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py'),
}
# The probe reads its backbone (tokenizer + encoder) and scenes from the segmentation config.
PROBE_CONFIG = FINETUNE_CONFIGS['seg']
# Metrics in the report: detection mAP over the classes present in the demo's val scenes (see
# demo.report.mean_over_present_classes), segmentation mIoU / accuracy from mmdet3d's SegMetric.
REPORT_METRICS = {'groupfree3d': ('AP25', 'AP50'), '3detr': ('AP25', 'AP50'), 'seg': ('miou', 'acc'),
                  'probe': ('miou', 'acc')}
# Label sources (--targets): both use the synthetic instance images as SAM masks.
TARGETS = {
    'class-embedding': (osp.join(CONFIGS, 'labels', 'demo_class_targets.py'),
                        'STAND-IN features: a fixed random embedding of each pixel\'s class + noise (a code of the '
                        'ground-truth class, so stage 1 is supervised by proxy; DINOv2 features carry semantics on '
                        'real images, but not a class code)'),
    'random-vit': (osp.join(CONFIGS, 'labels', 'demo_stand_in.py'),
                   'STAND-IN features: a seeded random 64-d ViT on the RGB frames (every synthetic class has its '
                   'own colour, so they still carry class, as a weaker proxy)'),
}

# Bridge3D's text targets on the demo labels (tools/add_text_labels.py), when a method needs them.
TEXT_LABELS = (osp.join(CONFIGS, 'labels', 'bridge3d_text_demo.py'),
               'STAND-IN text features: a seeded random CLIP text tower; class maps from the synthetic ground truth, '
               'captions listing the classes present')


class DemoSettingsError(ValueError):
    """A demo setting is out of range; the message names the setting."""


@dataclasses.dataclass
class DemoSettings:
    """Every setting of one demo run (``tools/demo.py``'s options; its ``--help`` explains each).

    ``work_dir`` and ``data_root`` default to folders named after ``targets``. :meth:`check` refuses settings
    out of range with one line naming the setting.
    """
    work_dir: Optional[str] = None
    data_root: Optional[str] = None
    targets: str = 'class-embedding'
    seeds: List[int] = dataclasses.field(default_factory=lambda: [0, 1, 2])
    # The segmentor only by default: in a pilot of 4 pairs (2026-12-01), neither task's fine-tuning showed a
    # difference, and 3DETR's runs (AP25 pretrained - scratch -0.02 in both of the first two pairs) did not fit
    # the 20-minute budget beside the label-efficiency runs; tasks=['3detr', 'groupfree3d'] adds them.
    tasks: List[str] = dataclasses.field(default_factory=lambda: ['seg'])
    label_task: str = 'seg'
    label_fractions: List[float] = dataclasses.field(default_factory=lambda: [0.25])
    train_scenes: int = 12
    val_scenes: int = 12
    frames_per_scene: int = 10
    points_per_scene: int = 20000
    pretrain_epochs: Optional[int] = None
    finetune_epochs: int = 30
    label_cfg_options: List[str] = dataclasses.field(default_factory=list)
    # Pretraining methods (demo.methods.METHODS); SAM-MTP alone by default, the reference of every comparison.
    methods: List[str] = dataclasses.field(default_factory=lambda: ['sam-mtp'])
    fresh: bool = False
    # Run the tools in this process (tests) instead of one subprocess per step.
    in_process: bool = False

    def __post_init__(self):
        suffix = '' if self.targets == 'class-embedding' else '_' + self.targets.replace('-', '_')
        self.work_dir = self.work_dir or osp.join('work_dirs', 'demo' + suffix)
        self.data_root = self.data_root or osp.join('data', 'demo' + suffix, 'scannet')

    def check(self) -> 'DemoSettings':
        if self.targets not in TARGETS:
            raise DemoSettingsError(f'targets must be one of {sorted(TARGETS)}, got {self.targets!r}')
        for task in list(self.tasks) + [self.label_task]:
            if task not in FINETUNE_CONFIGS:
                raise DemoSettingsError(f'unknown fine-tuning task {task!r}; choose from {sorted(FINETUNE_CONFIGS)}')
        if self.pretrain_epochs is not None and self.pretrain_epochs < 2:
            raise DemoSettingsError('--pretrain-epochs must be >= 2 (one warm-up epoch, then the cosine schedule)')
        if any(not 0 < f < 1 for f in self.label_fractions):
            raise DemoSettingsError(f'--label-fractions must lie in (0, 1), got {self.label_fractions}')
        if len(set(self.seeds)) != len(self.seeds):
            raise DemoSettingsError(f'--seeds must be distinct, got {self.seeds}')
        from .methods import MethodError, check_methods
        try:
            check_methods(self.methods)
        except MethodError as err:
            raise DemoSettingsError(str(err)) from None
        return self
