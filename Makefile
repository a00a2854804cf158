# The two commands a newcomer needs: `make run` and `make test`. Everything else is optional.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The distributed stack on this machine: Redis for state, RabbitMQ for jobs.
STACK_ENV := THUMBNAILIFY_BACKENDS_STORE=redis THUMBNAILIFY_BACKENDS_QUEUE=rabbitmq
# The one-server stack: NATS JetStream for state, jobs and history.
NATS_STACK_ENV := THUMBNAILIFY_BACKENDS_STORE=nats THUMBNAILIFY_BACKENDS_QUEUE=nats
# `make run` also makes a size for the web page's larger view; the API's default size stays first.
# THUMBNAILIFY_THUMBNAIL_SIZES in the environment wins; the service's own default is one size.
RUN_SIZES := default=100x100,large=800x800
# npm packages the tests run under Node (tests/system/tus_upload.cjs; the reference placeholder
# decoders tests/unit/placeholders.mjs runs), into var/node.
NODE_PACKAGES := tus-js-client@4.3.1 thumbhash@0.1.1 blurhash@2.0.5
NODE_STAMP := var/node/.installed
# Most system tests wait on processes and services rather than on cores: four test processes, each
# taking the next test as it frees up (a file per process left one long file as the tail).
SUITE_ARGS := -n 4 --dist worksteal
# The suite starts hundreds of Python processes: each must find its modules compiled, or it compiles
# them all again (~1 s of CPU each where PYTHONDONTWRITEBYTECODE is set, as in some CI images). The
# venv is compiled at install; this compiles the project's own sources, only those changed since.
BYTECODE := $(PY) -m compileall -q -j 0 thumbnailify server worker client tests bench scripts stress > /dev/null
# pytest caches the test modules and pytest plugins it rewrites for its assertions beside their
# bytecode, and writes nothing where PYTHONDONTWRITEBYTECODE is set: each test process then rewrites
# ~280 modules again (2.3 of its 5 CPU-s of collection). Its own processes may write.
PYTEST := PYTHONDONTWRITEBYTECODE= $(PY) -m pytest

.PHONY: run stack stack-nats s3 test node check lint settings-docs check-deploy services system-run system-test system-bench bench bench-compare clean

run: system-run $(STAMP)  ## the service on http://127.0.0.1:8080, embedded backends, Ctrl-C stops it
	THUMBNAILIFY_THUMBNAIL_SIZES="$${THUMBNAILIFY_THUMBNAIL_SIZES:-$(RUN_SIZES)}" $(PY) -m thumbnailify

stack: system-test $(STAMP) services  ## the same with local Redis + RabbitMQ, 2 photo workers, a video worker
	$(STACK_ENV) $(PY) -m thumbnailify --workers 2

stack-nats: system-test $(STAMP) services  ## the same on the local NATS (JetStream) alone, 2 photo workers
	$(NATS_STACK_ENV) $(PY) -m thumbnailify --workers 2

s3: $(STAMP)  ## a local S3 server (SeaweedFS) on 127.0.0.1:8333 for backends.files=s3; Ctrl-C stops it
	$(PY) -m scripts.seaweed var/s3

test: system-test $(STAMP) $(NODE_STAMP) services  ## everything CI runs: the checks beside the suite, both must pass
	@mkdir -p var; $(MAKE) --no-print-directory lint check-deploy > var/checks.log 2>&1 & checks=$$!; \
	$(BYTECODE); $(PYTEST) $(SUITE_ARGS); tests=$$?; \
	wait $$checks; checked=$$?; echo "--- lint and check-deploy ($$( ((checked)) && echo FAILED || echo passed))"; \
	cat var/checks.log; exit $$(( tests || checked ))

node: $(NODE_STAMP)  ## the npm packages the tests use (tus-js-client, thumbhash, blurhash), into var/node

$(NODE_STAMP): Makefile
	npm install --prefix var/node --no-audit --no-fund --no-save $(NODE_PACKAGES)
	touch $(NODE_STAMP)

check: lint services $(NODE_STAMP)  ## the inner loop: lint, the unit and the in-process API tests (embedded, and on the local Redis, RabbitMQ, NATS and a SeaweedFS the tests start)
	$(BYTECODE); $(PYTEST) -q $(SUITE_ARGS) tests/unit tests/api

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m scripts.typecheck  # mypy --strict on the package: ~15 s cold, under 1 s from var/mypy-cache
	$(PY) -m scripts.settings_docs --check

settings-docs: $(STAMP)  ## rewrite config/config.yaml and the settings table of docs/configuration.md from thumbnailify/settings.py
	$(PY) -m scripts.settings_docs

check-deploy: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash deploy/validate.sh

services:
	bash scripts/ensure-services.sh

system-run:
	bash scripts/install-system.sh run

system-test:
	bash scripts/install-system.sh test

system-bench:
	bash scripts/install-system.sh bench

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "$$(grep '^uv==' requirements-dev.txt)"  # uv installs the rest ~5x faster than pip
	$(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements-dev.txt -e .  # -e: the thumbnailify command
	touch $(STAMP)

bench: system-bench $(STAMP) services  ## BEFORE=<checkout of older code> adds it as the hardening bench's baseline
	$(PY) -m bench.worker && $(PY) -m bench.budget && bash bench/ingest.sh && $(PY) -m bench.e2e && $(PY) -m bench.images && $(PY) -m bench.formats && $(PY) -m bench.video && $(PY) -m bench.memory \
		&& $(PY) -m bench.scale && $(PY) -m bench.streams && $(PY) -m bench.fingerprints && $(PY) -m bench.similar && $(PY) -m bench.fair_share && $(PY) -m bench.hardening $(if $(BEFORE),--before $(BEFORE))

# Checked when the Makefile is read, so nothing is installed or started for a call without BEFORE.
ifneq ($(filter bench-compare,$(MAKECMDGOALS)),)
ifeq ($(BEFORE),)
$(error usage: make bench-compare BEFORE=<rev>  (any revision git knows, e.g. main or HEAD~3))
endif
endif

bench-compare: system-bench $(STAMP) services  ## BEFORE=<rev> (required): the key benchmarks on <rev> and here, side by side
	$(PY) -m bench.compare --before $(BEFORE)

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
