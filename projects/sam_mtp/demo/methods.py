"""The pretraining methods the demo can compare (``tools/demo.py --methods``): one table, name -> demo pretraining
config(s) -> the checkpoint whose encoder the fine-tuning and the probe load.

A method is its encoder's pretraining *step* and, through ``teacher``, the steps that step needs (stage 2 needs
its stage-1 teacher). Steps are shared: methods whose chains contain the same step (the same config with the same
teacher) train it once per seed. Every step trains the same demo encoder (``configs/sam_mtp/demo/_base_/
demo_scale.py``'s ``demo_encoder``), so every checkpoint loads strictly into the demo's fine-tuning configs.

SAM-MTP (stage 1 + 2) is the reference of every comparison; the paper's Table 3 (components) and Table 4 (stages)
rows are methods too, at demo scale (``configs/sam_mtp/demo/ablations/``, deltas of the demo configs with the
switches of ``configs/sam_mtp/ablations/``), so that the demo tests the paper's component claims with the same
targets for every method.
"""
import dataclasses
import os.path as osp
from typing import Dict, List, Optional, Sequence

from .settings import DEMO_CONFIGS, REPO_ROOT

ABLATIONS = osp.join(DEMO_CONFIGS, 'ablations')


@dataclasses.dataclass(frozen=True)
class PretrainStep:
    """One pretraining run per seed: ``tools/train.py config``, with ``teacher``'s checkpoint (another step) as
    ``model.teacher_checkpoint``. Its work dir is ``<work-dir>/pretrain/seed<s>/<name>``. ``text_labels``: it
    reads Bridge3D's text targets, which the demo adds to the train labels once before any pretraining."""
    name: str
    config: str
    what: str
    teacher: Optional[str] = None
    text_labels: bool = False


@dataclasses.dataclass(frozen=True)
class Method:
    """A pretraining method: the step whose checkpoint's encoder is fine-tuned and probed, the labels of its runs
    in the report (fine-tuning ``init``, probe ``init``) and the paper row it stands for."""
    name: str
    encoder_step: str
    paper: str
    finetune_label: str
    probe_label: str


def _ablation(algorithm: str, epochs: int) -> str:
    """A demo-scale ablation config (configs/sam_mtp/demo/ablations/, the OpenMMLab name of docs/configs.md)."""
    return osp.join(ABLATIONS, f'{algorithm}_plain-transformer_1xb8-{epochs}e_synthetic-scannet-frames.py')


STEPS: Dict[str, PretrainStep] = {s.name: s for s in (
    PretrainStep('stage1',
                 osp.join(DEMO_CONFIGS, 'sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py'),
                 'stage 1: SAM-guided tokens -> transformer -> group-balanced region distillation'),
    PretrainStep('stage2',
                 osp.join(DEMO_CONFIGS, 'sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'),
                 'stage 2: masked token prediction from the frozen stage-1 teacher', teacher='stage1'),
    PretrainStep('point-mae',
                 osp.join(DEMO_CONFIGS, 'point-mae_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'),
                 'Point-MAE: FPS+kNN groups, masked point reconstruction (Chamfer-L2)'),
    PretrainStep('bridge3d', osp.join(DEMO_CONFIGS, 'bridge3d_plain-transformer_1xb8-30e_synthetic-scannet-frames.py'),
                 'Bridge3D: foundation-model-guided masking, reconstruction and feature distillation',
                 text_labels=True),
    PretrainStep('stage1-knn-noreweight',
                 _ablation('sam-mtp-stage1-knn-tokens-no-reweight', 15),
                 'stage 1 on FPS+kNN tokens, no re-weighting'),
    PretrainStep('stage2-knn-noreweight',
                 _ablation('sam-mtp-stage2-knn-tokens-no-reweight', 30),
                 'stage 2 on FPS+kNN tokens, teacher without re-weighting', teacher='stage1-knn-noreweight'),
    PretrainStep('stage1-knn',
                 _ablation('sam-mtp-stage1-knn-tokens', 15),
                 'stage 1 on FPS+kNN tokens with re-weighting'),
    PretrainStep('stage2-knn',
                 _ablation('sam-mtp-stage2-knn-tokens', 30),
                 'stage 2 on FPS+kNN tokens', teacher='stage1-knn'),
    PretrainStep('stage1-noreweight',
                 _ablation('sam-mtp-stage1-no-reweight', 15),
                 'stage 1 on SAM-guided tokens, no re-weighting'),
    PretrainStep('stage2-noreweight',
                 _ablation('sam-mtp-stage2-no-reweight', 30),
                 'stage 2 on SAM-guided tokens, teacher without re-weighting', teacher='stage1-noreweight'),
    PretrainStep('joint', _ablation('sam-mtp-joint', 30),
                 'stage 1 + MTP in one stage (distillation and masked token prediction together)'),
)}

# The reference method keeps the labels of the demo's report: fine-tuning runs "pretrained", probe "stage2".
REFERENCE = 'sam-mtp'
METHODS: Dict[str, Method] = {m.name: m for m in (
    Method('sam-mtp', 'stage2', 'SAM-MTP, stage 1 + 2 (Table 3 row 6, Table 4 row 3)', 'pretrained', 'stage2'),
    Method('point-mae', 'point-mae', 'Point-MAE (Table 1/2 "+Point-MAE" rows)', 'point-mae', 'point-mae'),
    Method('bridge3d', 'bridge3d', 'Bridge3D (Table 1/2 "+Bridge3D" rows)', 'bridge3d', 'bridge3d'),
    Method('dense-distill', 'stage1-knn-noreweight', 'Table 3 row 2: dense distillation only', 'dense-distill',
           'dense-distill'),
    Method('dense-distill+mtp', 'stage2-knn-noreweight', 'Table 3 row 3: + MTP', 'dense-distill+mtp',
           'dense-distill+mtp'),
    Method('dense-distill+mtp+reweight', 'stage2-knn', 'Table 3 row 4: + balanced re-weighting',
           'dense-distill+mtp+reweight', 'dense-distill+mtp+reweight'),
    Method('dense-distill+mtp+sam-tokens', 'stage2-noreweight', 'Table 3 row 5: + SAM-guided tokens (no '
           're-weighting)', 'dense-distill+mtp+sam-tokens', 'dense-distill+mtp+sam-tokens'),
    Method('stage1', 'stage1', 'Table 4 row 1: stage 1 only', 'stage1', 'stage1'),
    Method('stage1+mtp-joint', 'joint', 'Table 4 row 2: stage 1 + MTP in one stage', 'stage1+mtp-joint',
           'stage1+mtp-joint'),
)}


class MethodError(ValueError):
    """A method cannot be run; the message names the method and the problem in one line."""


def step_chain(step: str) -> List[str]:
    """``step`` and its teachers, teachers first."""
    chain = []
    while step is not None:
        chain.insert(0, step)
        step = STEPS[step].teacher
    return chain


def pretrain_steps(methods: Sequence[str]) -> List[str]:
    """Every step the methods need, each once, a teacher before its students."""
    return list(dict.fromkeys(s for m in methods for s in step_chain(METHODS[m].encoder_step)))


def check_methods(methods: Sequence[str]) -> None:
    """Refuse, in one line, unknown methods, a list without the reference, repeats, and methods whose configs are
    not in this checkout."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise MethodError(f'--methods: unknown {unknown}; choose from {sorted(METHODS)}')
    if REFERENCE not in methods:
        raise MethodError(f'--methods must include {REFERENCE} (every method is compared with it), got {list(methods)}')
    if len(set(methods)) != len(methods):
        raise MethodError(f'--methods must be distinct, got {list(methods)}')
    for method in methods:
        for step in step_chain(METHODS[method].encoder_step):
            config = STEPS[step].config
            if not osp.isfile(config):
                raise MethodError(f'--methods {method}: {osp.relpath(config, REPO_ROOT)} does not exist; this '
                                  f'checkout has no demo config of {method}')
