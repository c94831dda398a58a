PY ?= .venv/bin/python
VENV := .venv/.installed

.PHONY: setup proto demo test lint tiny-bundle train eval bench chaos fuzz certs

setup: $(VENV)

$(VENV): pyproject.toml
	bash scripts/setup.sh
	touch $(VENV)

# The one place generated protobuf code comes from (tests/unit/test_protos.py fails when it is stale).
proto: $(VENV)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. protos/seedasr/v1/*.proto

demo: setup
	$(PY) -m services.cli demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m mypy shared services
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check . && $(PY) -m mypy shared services

tiny-bundle: setup
	$(PY) -m training.tiny_bundle --out bundles/tiny

train: setup
	bash training/train.sh

eval: setup
	$(PY) -m training.eval.run --card bundles/default/EVAL.md

bench: setup
	$(PY) -m services.bench
	$(PY) -m training.eval.bench_peers

# Fault injection: kill -9 worker, bridge, Redis and NATS KILLS times each under load; prints lost/duplicated.
KILLS ?= 20
chaos: setup
	$(PY) -m services.chaos --kills $(KILLS)

# N random and hostile Recognize / StreamingRecognize calls; prints status codes and rejection latency.
N ?= 100000
fuzz: setup
	$(PY) -m services.fuzz -n $(N)

# A development CA with server and client certificates for TLS/mTLS (deploy/compose.tls.yml reads them).
certs:
	bash scripts/dev_certs.sh deploy/certs gateway encoder context decoder reward
