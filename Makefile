# The two commands of the README: `make demo` (main job on bundled demo data) and `make test`.
# Both create or reuse the project-local venv (.venv) through tools/setup_env.sh.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: env demo test bench clean-demo

env:
	bash tools/setup_env.sh

DEMO_ARGS ?=

demo: env
	$(PY) tools/demo.py $(DEMO_ARGS)

test: env
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: env
	$(PY) benchmarks/run_all.py

clean-demo:
	rm -rf data/demo work_dirs/demo data/demo_random_vit work_dirs/demo_random_vit
