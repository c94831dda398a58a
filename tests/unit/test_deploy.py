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
