"""The Grafana dashboards shipped in roles/grafana/files/dashboards are well-formed, and every metric their
queries use is one that something on the platform really exposes.

The known metric names come from where they are produced, not from a list kept here:

- serving: the metric definitions in serving_image/src/llmops_serving/metrics.py (parsed, not imported),
  expanded the way prometheus_client exposes them (counters `_total`/`_created`, histograms
  `_bucket`/`_sum`/`_count`/`_created`);
- DCGM: the counters roles/nvidia_gpu configures dcgm-exporter with (nvidia_gpu_dcgm_exporter_counters);
- recording rules: the `record:` names in roles/prometheus (shipped rule files and the SLO template);
- backups/DR: the textfile-collector templates (roles/*/templates/*.prom.j2) that write them, or, where no
  role writes them yet, the metrics contract table in docs/observability.md;
- node_exporter: a real Debian `prometheus-node-exporter` started on a loopback port and scraped (with its
  textfile collector on, as roles/node_exporter runs it);
- Prometheus itself: `up` (every scrape) and `ALERTS` (every alerting rule).

Every query is also parsed by Prometheus' own parser (`promtool check rules` on a rules file made of the
queries, Grafana's variables replaced by sample values). Without promtool or node_exporter these tests fail
rather than skip: an unchecked dashboard is the bug they exist to catch.
"""
import ast
import json
import pathlib
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
DASHBOARD_DIR = ROOT / "roles" / "grafana" / "files" / "dashboards"
DASHBOARDS = sorted(DASHBOARD_DIR.glob("*.json"))
SERVING_METRICS = ROOT / "serving_image" / "src" / "llmops_serving" / "metrics.py"
NVIDIA_DEFAULTS = ROOT / "roles" / "nvidia_gpu" / "defaults" / "main.yml"
PROMETHEUS_ROLE = ROOT / "roles" / "prometheus"
OBSERVABILITY_DOC = ROOT / "docs" / "observability.md"

# Series Prometheus makes itself: `up` for every scrape, `ALERTS` for every pending/firing alert.
PROMETHEUS_GENERATED = {"up", "ALERTS"}
# Words of PromQL that look like metric names but are not.
PROMQL_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                   "bool", "offset", "atan2", "Inf", "NaN", "inf", "nan"}
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def load(path):
    with open(path) as handle:
        return json.load(handle)


def panels(dashboard):
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard):
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield "panel %r target %s" % (panel.get("title"), target.get("refId")), target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*", query)
            assert match, "variable %s: only label_values(<selector>, <label>) queries are checked" % var["name"]
            yield "variable %s" % var["name"], match.group(1)


def metric_names(expr):
    """Metric names a PromQL expression selects (strings, matchers, ranges and grouping removed first)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"'(?:\\.|[^'\\])*'", "''", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in NAME.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # exponent of a number (1e3) or a duration's unit
            continue
        if text[match.end():].lstrip().startswith("("):  # a function or an aggregation
            continue
        if match.group(0) not in PROMQL_KEYWORDS:
            names.add(match.group(0))
    return names


def concrete(expr):
    """The query with Grafana's variables replaced by values Prometheus can parse."""
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", expr)


# ----------------------------------------------------------------------------- known metric names

def serving_metric_names():
    exposed = {"Counter": ("_total", "_created"), "Gauge": ("",),
               "Histogram": ("_bucket", "_sum", "_count", "_created"), "Summary": ("", "_sum", "_count", "_created")}
    names = set()
    for node in ast.walk(ast.parse(SERVING_METRICS.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in exposed and node.args:
            first = node.args[0]
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), \
                "metrics.py line %d: metric name is not a literal" % node.lineno
            base = first.value[:-len("_total")] if node.func.id == "Counter" and first.value.endswith("_total") \
                else first.value
            names.update(base + suffix for suffix in exposed[node.func.id])
    assert names, "no metric definitions found in %s" % SERVING_METRICS
    return names


def dcgm_metric_names():
    defaults = yaml.safe_load(NVIDIA_DEFAULTS.read_text())
    names = {counter["field"] for counter in defaults["nvidia_gpu_dcgm_exporter_counters"]}
    assert names, "nvidia_gpu_dcgm_exporter_counters is empty"
    return names


def recording_rule_names():
    names = set()
    sources = list((PROMETHEUS_ROLE / "files" / "rules").glob("*.rules.yml"))
    sources += list((PROMETHEUS_ROLE / "templates").glob("*.rules.yml.j2"))
    for path in sources:
        names.update(re.findall(r"^\s*-?\s*record:\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*$", path.read_text(), re.M))
    assert names, "no recording rules found under %s" % PROMETHEUS_ROLE
    return names


def backup_metric_names():
    """Names the textfile-collector templates write; the documented contract where none writes them yet."""
    names = set()
    for path in sorted(ROOT.glob("roles/*/templates/*.prom.j2")):
        for line in path.read_text().splitlines():
            match = re.match(r"#\s*(?:TYPE|HELP)\s+([A-Za-z_:][A-Za-z0-9_:]*)", line) \
                or re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)[\s{]", line)
            if match and match.group(1).startswith("llmops_"):
                names.add(match.group(1))
    if names:
        return names
    section = OBSERVABILITY_DOC.read_text().split("**Backups, DR drills and certificates**", 1)[1]
    table = section.split("\n\n### ", 1)[0]
    names = set(re.findall(r"^\|\s*`([A-Za-z_:][A-Za-z0-9_:]*)`\s*\|", table, re.M))
    assert names, "no backup/DR metric names in the contract of %s" % OBSERVABILITY_DOC
    return names


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def node_exporter_names(tmp_path_factory):
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        pytest.fail("node_exporter is not installed: apt-get install prometheus-node-exporter "
                    "(scripts/bootstrap.sh does)")
    textfile_dir = tmp_path_factory.mktemp("textfile")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--web.listen-address=127.0.0.1:%d" % port, "--collector.textfile.directory=%s" % textfile_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as response:
                    text = response.read().decode()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("node_exporter did not answer on 127.0.0.1:%d: %s"
                                % (port, process.stderr.read().decode()[-2000:] if process.poll() is not None else ""))
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    names = {match.group(1) for match in re.finditer(r"^([A-Za-z_:][A-Za-z0-9_:]*)[\s{]", text, re.M)}
    assert "node_cpu_seconds_total" in names, "scraped node_exporter output looks wrong:\n" + text[:500]
    return names


@pytest.fixture(scope="module")
def known_metrics(node_exporter_names):
    return {
        "serving image": serving_metric_names(),
        "DCGM exporter": dcgm_metric_names(),
        "recording rules": recording_rule_names(),
        "backup/DR textfiles": backup_metric_names(),
        "node_exporter": node_exporter_names,
        "Prometheus": PROMETHEUS_GENERATED,
    }


# ----------------------------------------------------------------------------- structure

def test_there_are_the_four_dashboards():
    uids = {load(path)["uid"] for path in DASHBOARDS}
    assert {"llmops-serving", "llmops-gpu-fleet", "llmops-nodes", "llmops-backups-dr"} <= uids


def test_uids_and_titles_are_unique():
    dashboards = [load(path) for path in DASHBOARDS]
    uids = [d["uid"] for d in dashboards]
    titles = [d["title"] for d in dashboards]
    assert len(set(uids)) == len(uids), uids
    assert len(set(titles)) == len(titles), titles


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path):
    dashboard = load(path)
    for key in ("uid", "title", "tags", "panels", "templating", "schemaVersion", "time"):
        assert key in dashboard, "%s: missing %s" % (path.name, key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"]), "uid: at most 40 of [A-Za-z0-9_-]"
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned dashboards carry no database id"
    assert "llmops" in dashboard["tags"]
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables.get("datasource", {}).get("type") == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("env", "instance"):
        assert name in variables, "%s: no %s variable" % (path.name, name)
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, var["name"]
            # "All" must match series without the label too (a single Prometheus has no env label).
            assert not var.get("includeAll") or var.get("allValue") == ".*", var["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_have_ids_positions_and_datasources(path):
    dashboard = load(path)
    ids = [panel.get("id") for panel in panels(dashboard)]
    assert all(isinstance(i, int) for i in ids), "every panel needs an integer id"
    assert len(set(ids)) == len(ids), "panel ids repeat: %s" % ids
    cells = set()
    for panel in panels(dashboard):
        grid = panel.get("gridPos")
        assert grid and all(isinstance(grid.get(k), int) for k in "hwxy"), "%s: gridPos" % panel.get("title")
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, "%s: off the grid" % panel["title"]
        covered = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not covered & cells, "%s overlaps another panel" % panel["title"]
        cells |= covered
        if panel["type"] == "row":
            continue
        assert panel.get("title"), "panel %s has no title" % panel["id"]
        assert panel.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("targets"), "%s has no query" % panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), "%s: empty query" % panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], panel["title"]


# ----------------------------------------------------------------------------- queries

def test_metric_name_extraction():
    assert metric_names('sum by (job, le) (rate(llmops_x_bucket{route=~"a|b", le="+Inf"}[$__rate_interval]))') \
        == {"llmops_x_bucket"}
    assert metric_names("count(a{x=\"y\"} != 0) or vector(0)") == {"a"}
    assert metric_names("b / on (instance) group_left () c offset 5m > 1.5e3") == {"b", "c"}
    assert metric_names("time() - node_boot_time_seconds") == {"node_boot_time_seconds"}
    assert metric_names("job:llmops_http_requests:rate5m * 0") == {"job:llmops_http_requests:rate5m"}


def test_every_query_parses(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (scripts/bootstrap.sh does)")
    rules, where = [], []
    for path in DASHBOARDS:
        for place, expr in queries(load(path)):
            for variable in re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", re.sub(r'"(?:\\.|[^"\\])*"', "", expr)):
                assert variable in GRAFANA_INTERVALS, \
                    "%s %s: variable %s outside a label value" % (path.name, place, variable)
            rules.append({"record": "dashboard:query_%d" % len(rules), "expr": concrete(expr)})
            where.append("%s %s: %s" % (path.name, place, expr))
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True,
                            timeout=120, check=False)
    output = result.stdout + result.stderr
    for number in sorted({int(n) for n in re.findall(r"dashboard:query_(\d+)", output)}):
        output += "\n  query_%d is %s" % (number, where[number])
    assert result.returncode == 0, output


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_is_really_exposed(path, known_metrics):
    known = set().union(*known_metrics.values())
    unknown = []
    for place, expr in queries(load(path)):
        for name in sorted(metric_names(expr) - known):
            unknown.append("%s uses %s" % (place, name))
    assert not unknown, "metrics nothing exposes (sources: %s):\n  %s" % (", ".join(known_metrics), "\n  ".join(unknown))


def test_dashboards_use_the_recording_rules():
    """The recording rules exist for the dashboards: each must be used by one (the SLO series too)."""
    used = set()
    for path in DASHBOARDS:
        for query in queries(load(path)):
            used |= metric_names(query[1])
    missing = sorted(recording_rule_names() - used)
    assert not missing, "recording rules no dashboard shows: %s" % missing


def test_each_area_has_its_metrics(known_metrics):
    """Each dashboard reads the source it is about (guards against a dashboard emptied by mistake)."""
    expected = {"llmops-serving": "serving image", "llmops-gpu-fleet": "DCGM exporter",
                "llmops-nodes": "node_exporter", "llmops-backups-dr": "backup/DR textfiles"}
    for path in DASHBOARDS:
        dashboard = load(path)
        if dashboard["uid"] in expected:
            used = set().union(*(metric_names(query[1]) for query in queries(dashboard)))
            source = expected[dashboard["uid"]]
            assert used & known_metrics[source], "%s reads nothing from %s" % (path.name, source)
