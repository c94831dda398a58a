PY ?= .venv/bin/python
VENV := .venv/.installed

.PHONY: setup proto lock demo test test-all lint tiny-bundle train eval bench chaos fuzz soak certs

# The venv when pyproject.toml changed, then the bundle brought to its manifest (every time; fast when complete).
setup: $(VENV)
	@bash scripts/bundle.sh

$(VENV): pyproject.toml
	bash scripts/setup.sh
	touch $(VENV)

# The one place generated protobuf code comes from (tests/unit/test_protos.py fails when it is stale).
proto: $(VENV)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. protos/seedasr/v1/*.proto

# The lockfiles setup and the images install from (exact versions with sha256 hashes, Linux x86_64, Python 3.11):
# requirements.lock (every extra but gpu: what make setup and CI install), and the images' two from the same versions.
# Run after changing pyproject.toml's dependencies (tests/unit/test_lockfile.py fails until then).
LOCK := $(PY) -m uv pip compile -q pyproject.toml --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --find-links /opt/wheels --index-strategy unsafe-best-match --no-header
lock: $(VENV)
	$(LOCK) --extra model --extra train --extra dev -o requirements.lock
	$(LOCK) -c requirements.lock -o deploy/docker/light.lock
	$(LOCK) -c requirements.lock --extra model -o deploy/docker/model.lock

demo: setup
	$(PY) -m services.cli demo

# The fast tier: unit tests that need no servers (Redis/NATS/Celery, mesh processes), no TTS, no training loops and no
# model weights (the tiny bundle is in git): it runs on a clone before `make setup` has fetched a bundle.
test: $(VENV) lint
	SEEDASR_TEST_WITHOUT_WEIGHTS=1 $(PY) -m pytest -q -m "not integration and not e2e and not slow and not weights"

# Everything (what .ci/run calls): the fast tier plus integration (real Redis, NATS, Celery, fault
# injection), e2e (the mesh as processes) and the slow unit tests (TTS, training smoke).
test-all: setup lint
	$(PY) -m pytest -q

lint: $(VENV)
	$(PY) -m ruff check .
	$(PY) -m mypy shared services training

tiny-bundle: setup
	$(PY) -m training.tiny_bundle --out bundles/tiny

train: setup
	bash training/train.sh

# the dev sets are synthesised first where missing (training/data/make_dev_sets.sh: reserved voices, evaluation only)
eval: setup
	bash training/data/make_dev_sets.sh
	$(PY) -m training.eval.run --card bundles/default/EVAL.md

bench: setup
	$(PY) -m services.bench --profiles
	$(PY) -m training.eval.bench_peers
	$(PY) -m services.bench_stream --vad
	$(PY) -m services.bench_http

# Fault injection: kill -9 worker, bridge, Redis and NATS KILLS times each under load; prints lost/duplicated.
KILLS ?= 20
chaos: setup
	$(PY) -m services.chaos --kills $(KILLS)

# N random and hostile calls to every method served (ours, Riva's, internal, health, reflection) from 4 threads,
# then SIGTERM (MESSAGES=1000000: calls until that many request messages were sent); prints status codes,
# rejection latency and the exit time; then server CPU per stream message.
N ?= 100000
fuzz: setup
	$(PY) -m services.fuzz -n $(N) $(if $(MESSAGES),--messages $(MESSAGES))
	$(PY) -m services.fuzz --stream-cost

# The mesh under SOAK_S seconds of mixed traffic with components killed; a row of RSS, threads, files, CPU per
# audio second and statuses every SOAK_EVERY_S, a kill every SOAK_KILL_EVERY_S; then RSS by process since its start.
SOAK_S ?= 3600
SOAK_EVERY_S ?= 300
SOAK_KILL_EVERY_S ?= 1200
soak: setup
	$(PY) -m services.soak --duration-s $(SOAK_S) --interval-s $(SOAK_EVERY_S) --kill-every-s $(SOAK_KILL_EVERY_S)

# A development CA with server and client certificates for TLS/mTLS (deploy/compose.tls.yml reads them).
certs:
	bash scripts/dev_certs.sh deploy/certs gateway encoder context decoder reward
