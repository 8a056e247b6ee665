# The two entry points of the README: `make reproduce` and `make test`.
# Both create (or update) the virtual environment in .venv first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: reproduce test test-fast lint format dvc-deps venv notebooks lab smoke bench rehearse clean-venv

venv: $(STAMP)

# Re-install whenever the pinned dependencies change.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[app,dev]'
	@touch $(STAMP)

# The pipeline of dvc.yaml for params.yaml's profile (demo by default): papermill runs each
# notebook; metrics, figures and executed notebooks land in results/.
# params.yaml's `profile` picks the pipeline: dvc.yaml (demo kind) or pipelines/paper/dvc.yaml (paper),
# a link to pipelines/paper/pipeline.yaml made here (p2w_lib/app/pipelines.py says why).
reproduce: notebooks
	@kind=$$($(BIN)/python -m p2w_lib check-profile --print-kind) || exit 1; \
	export PATH="$(CURDIR)/$(BIN):$$PATH"; \
	if [ "$$kind" = paper ]; then \
		python -m p2w_lib check-weights && python -m p2w_lib.app.pipelines && \
		dvc repro pipelines/paper/dvc.yaml && python -m p2w_lib report --results results/paper; \
	else \
		dvc repro && python -m p2w_lib report --write-readme; \
	fi

# The .ipynb half of each notebook pair (notebooks/jupytext.toml): made if missing, brought up to
# date with its .py otherwise (outputs kept). `make lab` then opens JupyterLab on them.
notebooks: $(STAMP)
	@$(BIN)/jupytext --sync --quiet notebooks/[0-9][0-9]_*.py

lab: notebooks
	$(BIN)/jupyter lab notebooks

smoke: $(STAMP)
	$(BIN)/python -m p2w_lib smoke

# Side-by-side benchmark of the original training step against ours; writes results/bench/.
bench: $(STAMP)
	$(BIN)/python -m p2w_lib.tools.bench

# Dress rehearsal of the paper pipeline on the real annotation files (REFERENCE: the folder holding
# pic2word-imagenet-r/, fashion-iq/, cirr/, circo/) with placeholder images and a tiny random CLIP.
REFERENCE ?= ../shared/reference
rehearse: $(STAMP)
	$(BIN)/python -m p2w_lib rehearse --reference $(REFERENCE)

# The whole suite (what CI runs), and its fast tier: every unit test, leaving out the tests marked
# slow (pipeline runs, notebook executions, the rehearsal, fault injection).
test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

lint: $(STAMP)
	$(BIN)/ruff check p2w_lib tests notebooks
	$(BIN)/ruff format --check p2w_lib tests notebooks
	$(BIN)/python -m p2w_lib.tools.dvc_deps --check

format: $(STAMP)
	$(BIN)/ruff check --fix p2w_lib tests notebooks
	$(BIN)/ruff format p2w_lib tests notebooks

# Regenerate each DVC stage's code dependencies from its notebook's import closure.
dvc-deps: $(STAMP)
	$(BIN)/python -m p2w_lib.tools.dvc_deps

clean-venv:
	rm -rf $(VENV)
