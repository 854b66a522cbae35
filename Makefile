# The two commands of the README: `make demo` (main job on bundled demo data) and `make test`.
# Both create or reuse the project-local venv (.venv) through tools/setup_env.sh.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: env demo test test-slow lint bench clean-demo

env:
	bash tools/setup_env.sh

DEMO_ARGS ?=

demo: env
	$(PY) tools/demo.py $(DEMO_ARGS)

# The suite without the tests marked slow (under 8 minutes on 2 cores); test-slow runs those (CI runs both).
test: env
	$(PY) -m pytest tests -m "not slow" $(PYTEST_ARGS)

test-slow: env
	$(PY) -m pytest tests -m slow $(PYTEST_ARGS)

# Lint and import order (pyproject.toml [tool.ruff]); `.venv/bin/ruff check --fix .` sorts imports.
lint: env
	.venv/bin/ruff check .

bench: env
	$(PY) benchmarks/run_all.py

clean-demo:
	rm -rf data/demo work_dirs/demo data/demo_random_vit work_dirs/demo_random_vit
