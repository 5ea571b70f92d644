# cloud-assets: every target but where, clean and test-packages creates .venv and installs the pinned
# dependencies first (once), and writes the Dagster instance (make install).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LAUNCH := $(VENV)/bin/cloud-assets launch
# .env in this folder, if there is one: its KEY=value lines (no quotes; KEY=${KEY:-value} too) are
# defaults, which the environment and make's command line override. Dagster's command line would load
# ./.env over the environment, so every target starts it in a folder of its own (cloud-assets run,
# launch, ui and validate). ENV_FILE=FILE reads another file; ENV_FILE= none; make demo none.
ENV_FILE ?= .env
ifneq ($(filter demo,$(MAKECMDGOALS)),)
ENV_FILE :=
endif
ifneq ($(wildcard $(ENV_FILE)),)
include $(ENV_FILE).mk
$(ENV_FILE).mk: $(ENV_FILE)
	sed -n -e 's/^\([A-Za-z_][A-Za-z0-9_]*\)=$${\1:-\(.*\)}$$/\1 ?= \2\nexport \1/p;t' \
		-e 's/^\([A-Za-z_][A-Za-z0-9_]*\)=\(.*\)$$/\1 ?= \2\nexport \1/p' $< > $@
endif
DEMO_DATA := $(CURDIR)/var/demo-data
DEMO_MODEL := $(CURDIR)/var/demo-model.keras
export CLOUD_ASSETS_DATA_DIR ?= $(DEMO_DATA)
export CLOUD_ASSETS_MODEL_PATH ?= $(DEMO_MODEL)
# each dataset has its own array store, site and Dagster instance: the demo's in var/, another's in
# var/datasets/<its folder's name>/
DATASET_VAR := $(if $(subst $(DEMO_DATA),,$(CLOUD_ASSETS_DATA_DIR)),$(CURDIR)/var/datasets/$(shell basename "$(CLOUD_ASSETS_DATA_DIR)"),$(CURDIR)/var)
export CLOUD_ASSETS_VAR_DIR ?= $(DATASET_VAR)
# Dagster wants an absolute DAGSTER_HOME
export DAGSTER_HOME ?= $(if $(filter /%,$(CLOUD_ASSETS_VAR_DIR)),,$(CURDIR)/)$(CLOUD_ASSETS_VAR_DIR)/dagster
# where `make review REVIEW=FILE` puts the reviewer's file: where corrected_labels reads it
REVIEW_FILE = $(or $(CLOUD_ASSETS_REVIEW_PATH),$(CLOUD_ASSETS_DATA_DIR)/label_review.csv)
# the demo: 800 labelled + 200 test images at 350x525 (the model sees 224x224 either way)
DEMO_SIZE ?= --train 800 --test 200 --height 350 --width 525 --seed 0
# options of the demo classifier's training (cloud-assets train --help), e.g. --half-size 0: every epoch
# at the full size, about twice the time
DEMO_TRAIN ?=

.PHONY: install instance test-packages gpu lint test test-fast demo run where ui site review serve docs definitions clean bench

# Python packages only, into .venv: no root needed (make demo, ui, site, review, serve, docs)
install: $(STAMP) instance

# Debian packages that only the tests use (the test target installs them, with sudo when not root):
# chromium (the report's browser tests, driven by Playwright; no browser download), redis-server
# (the Celery executor's broker) and postgresql (a team's instance; the tests start their own server)
PG_CTL := /usr/lib/postgresql/15/bin/pg_ctl
test-packages: /usr/bin/chromium /usr/bin/redis-server $(PG_CTL)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET = $(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q
/usr/bin/chromium /usr/bin/redis-server:
	$(APT_GET) $(notdir $@)
$(PG_CTL):
	$(APT_GET) postgresql

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# the instance: dagster.yaml, on SQLite in DAGSTER_HOME or on PostgreSQL (CLOUD_ASSETS_POSTGRES_URL or
# DAGSTER_POSTGRES_*), checked on every call as the variables may have changed; the gpu pool's limit
# is created up front: two runs that start together on a new instance race to create it
instance: | $(STAMP)
	@$(VENV)/bin/cloud-assets instance

# the CUDA build of a Keras backend (jax or tensorflow), pinned; then run with KERAS_BACKEND set to
# it. `cloud-assets device` says which device the backend computes on.
GPU_BACKEND ?= jax
gpu: install
	$(PY) -m pip install --quiet -r requirements-gpu-$(GPU_BACKEND).lock
	KERAS_BACKEND=$(GPU_BACKEND) $(VENV)/bin/cloud-assets device

# ruff (pyproject's rules) on the code and the benches, mypy's type check on the package
lint: install
	$(VENV)/bin/ruff check cloud_assets bench
	$(VENV)/bin/mypy

# every test (after lint); test-fast: the in-process tier (lib, report, settings, the assets on tiny
# data), no e2e
test: install test-packages lint
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=12

test-fast: install
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not e2e" -q

definitions: install
	@$(VENV)/bin/cloud-assets validate

$(DEMO_DATA)/train.csv: | $(STAMP)
	$(VENV)/bin/cloud-assets synth --out $(DEMO_DATA) $(DEMO_SIZE)

$(DEMO_MODEL): | $(DEMO_DATA)/train.csv
	$(VENV)/bin/cloud-assets train --data $(DEMO_DATA) --out $(DEMO_MODEL) $(DEMO_TRAIN)

# the demo: its dataset and classifier, then every asset; .env is not read, and the dataset, model, var
# folder and Dagster instance are the demo's whatever the environment says
demo: install $(DEMO_DATA)/train.csv $(DEMO_MODEL)
	@$(MAKE) --no-print-directory run ENV_FILE= CLOUD_ASSETS_DATA_DIR=$(DEMO_DATA) CLOUD_ASSETS_MODEL_PATH=$(DEMO_MODEL) \
		CLOUD_ASSETS_VAR_DIR=$(CURDIR)/var DAGSTER_HOME=$(CURDIR)/var/dagster
	@echo "Demo dataset: $(DEMO_DATA) (label_noise.csv lists the injected label errors)"

# every asset of the configured dataset and model (CLOUD_ASSETS_DATA_DIR, CLOUD_ASSETS_MODEL_PATH) that is
# stale or missing: the dataset, the model file and the review observed, then what changed since and what
# depends on it (cloud-assets run: its console in $(CLOUD_ASSETS_VAR_DIR)/logs/dg-launch.log, the
# progress in the terminal; under Celery or Kubernetes one backfill, which the Dagster daemon runs)
run: install
	@$(VENV)/bin/cloud-assets run
	@echo
	@$(MAKE) --no-print-directory where

# where the configured dataset's data, model, assets, site and Dagster instance are
where:
	@echo "Dataset:      $(CLOUD_ASSETS_DATA_DIR)"
	@echo "Model:        $(CLOUD_ASSETS_MODEL_PATH)"
	@echo "Review:       $(REVIEW_FILE)  (make review REVIEW=FILE puts a reviewer's file there)"
	@echo "Assets:       $(CLOUD_ASSETS_VAR_DIR)/store/<asset>/  (.npy, .parquet, .json)"
	@echo "Report site:  $(CLOUD_ASSETS_VAR_DIR)/site/index.html  (make serve: http://127.0.0.1:$(SERVE_PORT))"
	@echo "Dagster home: $(DAGSTER_HOME)"
	@echo "Open the UI:  make ui   (then http://$(UI_HOST):$(UI_PORT))"

# the webserver listens on loopback only; UI_HOST=0.0.0.0 exposes it to the network
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
# dagster dev (webserver, daemon), started in $(CLOUD_ASSETS_VAR_DIR)/ui: in this folder it would load .env
# over the environment
ui: install
	@$(VENV)/bin/cloud-assets ui --host $(UI_HOST) --port $(UI_PORT)

site: install
	@$(LAUNCH) --assets corrected_labels,report_site
	@echo "Report site: $(CLOUD_ASSETS_VAR_DIR)/site/index.html"

# apply the reviewer's decisions: REVIEW=FILE (downloaded from the Label issues page) is checked and put
# at REVIEW_FILE first (cloud-assets review: a file that does not apply leaves the one there); without
# it, the file already there. FEWER=1 applies a review that gives fewer label changes than the latest
# corrections (every version stays in corrections/)
FEWER_ON = $(filter 1 yes Yes YES true True TRUE,$(FEWER))
review: install
	$(if $(REVIEW),@$(VENV)/bin/cloud-assets review "$(REVIEW)" $(if $(FEWER_ON),--fewer))
	@$(LAUNCH) --job observe_label_review
	@$(LAUNCH) --assets corrected_labels,report_site $(if $(FEWER_ON),--config-json \
		'{"ops": {"corrected_labels": {"config": {"allow_fewer_changes": true}}}}')
	@echo "Corrected labels: $(CLOUD_ASSETS_VAR_DIR)/store/corrected_labels/train_corrected.csv (every version: $(CLOUD_ASSETS_VAR_DIR)/corrections/)"

# the project's documentation (docs/pages/) as a site, built offline and --strict
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --quiet --strict -f docs/mkdocs.yml -d $(CURDIR)/var/docs
	@echo "Documentation: $(CURDIR)/var/docs/index.html"

# the report site on loopback only, at SERVE_PORT
SERVE_PORT ?= 8000
serve: install
	$(PY) -m http.server --bind 127.0.0.1 --directory $(CLOUD_ASSETS_VAR_DIR)/site $(SERVE_PORT)

# three benchmarks, each ending with one line of figures (docs/pages/performance.md, Label audit);
# label_audit.py first prepares its held-out cells when missing (about 18 min each on 2 cores, cached
# in bench/.cache/). bench/full_scale.py and the others are run by hand
bench: install
	$(PY) bench/masks.py
	$(PY) bench/saliency.py
	$(PY) bench/label_audit.py

# removes var/ (the demo, every dataset's store, site and Dagster instance) but the kept corrections
# (corrections/: every version, each with the review it applied), which it lists
clean:
	@[ ! -d var ] || { find var -mindepth 1 -name corrections -prune -o ! -type d -exec rm -f {} + \
	    && find var -depth -type d -empty -delete; }
	@[ ! -d var ] || find var -name corrections -prune -print | sed 's/^/kept: /'
