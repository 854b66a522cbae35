"""A hook for distributed-training tests: every rank saves its own parameters before and after training, and
the type of the model wrapper, to ``<work_dir>/rank<r>_params.pth``, so a test can check that the ranks stayed in
sync."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankParamsHook(Hook):

    def _params(self, runner):
        module = getattr(runner.model, 'module', runner.model)
        return {k: v.detach().cpu().clone() for k, v in module.named_parameters()}

    def before_train(self, runner) -> None:
        self._before = self._params(runner)

    def after_train(self, runner) -> None:
        torch.save(dict(wrapper=type(runner.model).__name__, before=self._before, after=self._params(runner)),
                   osp.join(runner.work_dir, f'rank{get_rank()}_params.pth'))
