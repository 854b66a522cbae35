"""The CPU demo behind ``make demo`` / ``tools/demo.py``: the whole pipeline on generated data, pretrained vs
scratch in seeded pairs, with the report.

Modules: :mod:`.settings` (what a run does), :mod:`.runner` (the steps), :mod:`.finetune` (the fine-tuning runs
and their worker), :mod:`.report` (statistics, tables, report.json / report.md), :mod:`.plots` (pictures),
:mod:`.results_page` (docs/demo_results.md). Nothing is imported here, so that the fine-tuning worker can run as
``python -m projects.sam_mtp.demo.finetune``.
"""
