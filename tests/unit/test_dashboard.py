"""The Grafana dashboard and the Prometheus config plot and scrape what the services export.

Every metric name in every PromQL expression (dashboard panels, template variables, alert rules) is one that
shared/metrics.py registers (with prometheus-client's `_total`/`_bucket`/... suffixes and its default process
collectors); every panel uses the provisioned datasource; every scrape target is a compose service on the port
that service serves /metrics on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import ROOT

SERVICES = {"encoder", "context", "decoder", "gateway", "reward"}
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "seedasr.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
# series Prometheus makes itself for every target, not exported by any service
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
                     "scrape_samples_post_metric_relabeling"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("_sum", "_count", "_created"), "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
            "info": ("_info",), "gauge": ("",), "unknown": ("",), "stateset": ("",)}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
            "offset", "atan2", "inf", "nan", "Inf", "NaN"}


def load_yaml(path):
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def registered() -> dict[str, str]:
    """Every sample name the services can export -> its metric family (what shared/metrics.py registers,
    plus prometheus-client's default process/platform/gc collectors)."""
    from prometheus_client import REGISTRY

    import shared.metrics  # noqa: F401  (registers the metrics in the default registry)

    names: dict[str, str] = {}
    for family in REGISTRY.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = family.name
        for sample in family.samples:
            names[sample.name] = family.name
    return names


@pytest.fixture(scope="module")
def metric_label_names() -> set[str]:
    from prometheus_client.metrics import MetricWrapperBase

    import shared.metrics as metrics

    return {label for m in vars(metrics).values() if isinstance(m, MetricWrapperBase) for label in m._labelnames}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and numbers left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    e = re.sub(r"\{[^{}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\[\]]*\]", " ", e)  # range selectors, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", e)  # label lists
    e = re.sub(r"\$\{?\w+\}?", " ", e)  # Grafana variables
    e = re.sub(r"(?<![\w:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|s|m|h|d|w|y)?(?![\w:])", " ", e)  # numbers
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if m.group() in KEYWORDS or e[m.end():].lstrip().startswith("("):  # a function or aggregation
            continue
        names.add(m.group())
    return names


def variable_metric_names(query: str) -> set[str]:
    """Metric names in a Grafana Prometheus variable query: label_values(EXPR, label), query_result(EXPR), ..."""
    query = query.strip()
    if m := re.fullmatch(r"label_values\((.+),\s*\w+\s*\)", query, re.S):
        return metric_names(m.group(1))
    if re.fullmatch(r"label_values\(\s*\w+\s*\)|label_names\(\s*\)", query):
        return set()
    if m := re.fullmatch(r"(?:query_result|metrics)\((.+)\)", query, re.S):
        return metric_names(m.group(1))
    return metric_names(query)


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> Iterator[dict]:
    """Every panel, those inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(board: dict) -> Iterator[tuple[str, str]]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def alert_rules() -> list[dict]:
    config = load_yaml(PROMETHEUS_DIR / "alerts.yml")
    return [rule for group in config["groups"] for rule in group["rules"]]


def provisioned_datasource() -> dict:
    sources = [s for f in sorted((PROVISIONING / "datasources").glob("*.y*ml")) for s in load_yaml(f)["datasources"]]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert len(prometheus) == 1, prometheus
    return prometheus[0]


def compose() -> dict:
    return load_yaml(ROOT / "docker-compose.yml")


def mounts(service: dict) -> dict[str, str]:
    """host path (relative to the repository) -> container path, for a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./"):
            out[host[2:].rstrip("/")] = container.rstrip("/")
    return out


def metrics_port(service: dict) -> int:
    env = service.get("environment", {})
    port = env.get("SEEDASR_METRICS_PORT", env.get("SEEDASR_HTTP_PORT"))
    assert port is not None, "the service serves no /metrics (neither SEEDASR_METRICS_PORT nor SEEDASR_HTTP_PORT)"
    return int(port)


# ---- the PromQL reader itself


def test_the_promql_reader_finds_metric_names_and_nothing_else() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, stage) (rate(seedasr_stage_duration_seconds_bucket'
            '{job=~"$job", stage="end_to_end", x="a{b}"}[$__rate_interval]))) > 1e-3')
    assert metric_names(expr) == {"seedasr_stage_duration_seconds_bucket"}
    assert metric_names('sum by (service, code) (rate(a_total{code!="OK"}[5m])) / ignoring (code) group_left '
                        'sum by (service) (rate(b_total[5m] offset 1h)) and on (job) up == 0') == {"a_total", "b_total",
                                                                                                     "up"}
    assert metric_names("max by (job) (deriv(seedasr_reward_backlog[15m])) > 0 unless absent(x:recorded)") == {
        "seedasr_reward_backlog", "x:recorded"}
    assert metric_names("process_open_fds / process_max_fds * 100") == {"process_open_fds", "process_max_fds"}
    assert variable_metric_names('label_values(up{mesh="seedasr", job=~"$job"}, instance)') == {"up"}
    assert variable_metric_names("label_values(job)") == set()


def test_the_registry_holds_the_suffixed_names(registered) -> None:
    for name in ("seedasr_grpc_requests_total", "seedasr_stage_duration_seconds_bucket",
                 "seedasr_stage_duration_seconds_count", "seedasr_reward_backlog", "seedasr_audio_seconds_total",
                 "process_cpu_seconds_total", "process_resident_memory_bytes"):
        assert name in registered, name
    assert "seedasr_grpc_requests" not in registered  # a counter is only ever exported with _total
    assert "seedasr_stage_duration_seconds" not in registered


# ---- the dashboard


def test_every_dashboard_expression_uses_only_metrics_the_services_export(registered) -> None:
    board = dashboard()
    exprs = list(expressions(board))
    assert len(exprs) >= 20
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, (title, expr)
        unknown = names - set(registered) - PROMETHEUS_SERIES
        assert not unknown, f"panel {title!r} plots {unknown}, which shared/metrics.py does not export: {expr}"
    for var in board["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        unknown = variable_metric_names(query) - set(registered) - PROMETHEUS_SERIES
        assert not unknown, (var["name"], unknown)


def test_the_dashboard_plots_every_seedasr_metric_and_the_process_metrics(registered) -> None:
    from prometheus_client.metrics import MetricWrapperBase

    import shared.metrics as metrics

    used = {registered.get(n, n) for _, expr in expressions(dashboard()) for n in metric_names(expr)}
    defined = {family.name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)
               for family in m.describe()}
    assert len(defined) >= 11 and all(name.startswith("seedasr_") for name in defined)
    assert defined <= used, f"no panel plots {defined - used}"
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= used


def test_latency_panels_show_p50_p95_p99_per_stage_and_end_to_end() -> None:
    exprs = [expr for _, expr in expressions(dashboard())]
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(f"histogram_quantile({quantile}," in e and "by (le, stage)" in e
                   and "seedasr_stage_duration_seconds_bucket" in e for e in exprs), quantile
        assert any(f"histogram_quantile({quantile}," in e and 'stage="end_to_end"' in e for e in exprs), quantile


def test_every_panel_uses_the_provisioned_datasource_and_the_job_and_instance_variables() -> None:
    uid = provisioned_datasource()["uid"]
    board = dashboard()
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == uid, panel["title"]
            assert 'job=~"$job"' in target["expr"] and 'instance=~"$instance"' in target["expr"], (
                panel["title"], target["expr"])
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"job", "instance"} <= set(variables)
    for var in variables.values():
        assert var["datasource"]["uid"] == uid, var["name"]
    assert "$job" in json.dumps(variables["instance"]["query"])  # instances of the chosen jobs


def test_the_dashboard_is_a_valid_grafana_dashboard_with_a_tidy_grid() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and 36 <= board["schemaVersion"] <= 41
    all_panels = list(panels(board))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in all_panels]
    assert len(titles) == len(set(titles)), titles
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        assert panel["type"] in {"row", "stat", "timeseries", "heatmap", "gauge", "table", "bargauge"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


# ---- Grafana provisioning and compose


def test_grafana_provisions_the_prometheus_service_and_loads_the_dashboard_folder() -> None:
    services = compose()["services"]
    source = provisioned_datasource()
    url = urlparse(source["url"])
    assert url.hostname in services and url.port == 9090
    assert "9090:9090" in services["prometheus"]["ports"]
    grafana = services["grafana"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])
    bind = mounts(grafana)
    assert bind["deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = [p for f in (PROVISIONING / "dashboards").glob("*.y*ml") for p in load_yaml(f)["providers"]]
    assert [p["options"]["path"] for p in providers] == [bind["deploy/grafana/dashboards"]]
    env = grafana["environment"]
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == bind["deploy/grafana/dashboards"] + "/" + DASHBOARD.name
    # viewers need no login; the admin password is not written into the file
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD")


def test_prometheus_loads_its_config_and_alert_rules_from_the_mounted_folder() -> None:
    prometheus = compose()["services"]["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    mounted = mounts(prometheus)["deploy/prometheus"]
    assert f"--config.file={mounted}/prometheus.yml" in prometheus["command"]
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert config["rule_files"] and all((PROMETHEUS_DIR / f).exists() for f in config["rule_files"])


# ---- scrape targets


def test_prometheus_scrapes_every_service_every_5s_on_its_metrics_port(metric_label_names) -> None:
    services = compose()["services"]
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    scraped = {}
    for job in config["scrape_configs"]:
        assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "5s", job["job_name"]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]:
            # a target label named like a metric label would rename the metric's own to exported_<name>
            assert not set(static.get("labels", {})) & (metric_label_names | {"job", "instance"}), static
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                assert host in services, f"{job['job_name']} scrapes {host}, which compose does not start"
                assert int(port) == metrics_port(services[host]), target
                assert job["job_name"] == host  # one job per service: the dashboard's $job is the service
                scraped[host] = int(port)
    assert set(scraped) == SERVICES
    assert "8080:8080" in services["gateway"]["ports"]  # the HTTP front
    assert all(scraped[s] == 9464 for s in SERVICES)  # plain HTTP whatever the gateway's front speaks


# ---- alert rules


def test_alert_rules_use_exported_metrics_and_cover_errors_latency_backlog_and_targets(registered) -> None:
    rules = alert_rules()
    used = set()
    for rule in rules:
        assert rule["alert"] and rule["labels"]["severity"] in {"critical", "warning", "info"}, rule
        assert rule["annotations"]["summary"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), rule["alert"]
        names = metric_names(rule["expr"])
        unknown = names - set(registered) - PROMETHEUS_SERIES
        assert names and not unknown, (rule["alert"], unknown)
        used |= names
    assert {"up", "seedasr_grpc_requests_total", "seedasr_stage_duration_seconds_bucket",
            "seedasr_reward_backlog"} <= used
    assert len({r["alert"] for r in rules}) == len(rules)
