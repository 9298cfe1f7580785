"""Render every file the elasticsearch, kibana and filebeat roles write, and validate it.

Elastic's packages cannot be installed here, so these tests are what checks the logging plane: each
template is rendered with Ansible's own templating engine from the role's defaults and vars plus the
values of every cloud inventory (dev single-node, staging/prod multi-node) and of the defaults alone,
then parsed and checked against the shapes Elasticsearch, Kibana and Filebeat document. The ECS
fields the serving image writes are taken from serving_image by running its logger, never from a
list kept here.
"""
import ast
import fnmatch
import importlib.util
import io
import json
import logging
import pathlib
import re

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = pathlib.Path(__file__).resolve().parents[3]
ROLES = ("elasticsearch", "kibana", "filebeat")
SERVING_SRC = ROOT / "serving_image" / "src" / "llmops_serving"
INVENTORIES = sorted(p.parents[2] for p in ROOT.glob("inventories/*/*/group_vars/all/logging.yml"))

# Secrets with characters an environment file or YAML must escape.
SECRETS = {
    "vault_llmops_logging_ca_passphrase": "ca-pass phrase",
    "vault_llmops_elastic_password": 'el"astic\\pw$1',
    "vault_llmops_kibana_system_password": "kib'ana sys#pw",
    "vault_llmops_filebeat_password": 'fb "pw" \\ x',
    "vault_llmops_kibana_encryption_key": "k" * 40,
}
DIRECT_SECRETS = {
    "elasticsearch_tls_ca_passphrase": SECRETS["vault_llmops_logging_ca_passphrase"],
    "elasticsearch_elastic_password": SECRETS["vault_llmops_elastic_password"],
    "elasticsearch_kibana_system_password": SECRETS["vault_llmops_kibana_system_password"],
    "elasticsearch_filebeat_password": SECRETS["vault_llmops_filebeat_password"],
    "kibana_tls_ca_passphrase": SECRETS["vault_llmops_logging_ca_passphrase"],
    "kibana_elasticsearch_password": SECRETS["vault_llmops_kibana_system_password"],
    "kibana_encryption_key": SECRETS["vault_llmops_kibana_encryption_key"],
    "kibana_saved_objects_password": SECRETS["vault_llmops_elastic_password"],
    "filebeat_elasticsearch_password": SECRETS["vault_llmops_filebeat_password"],
}


def _trust(value):
    """Mark loaded strings as templates, as Ansible does for vars files."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trust(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trust(v) for v in value]
    return value


LOADER = DataLoader()


def _load(path):
    return LOADER.load_from_file(str(path)) or {}


class Scenario:
    """An inventory (or the defaults alone): its variables, logging hosts and one node."""

    def __init__(self, name, inventory=None):
        self.name = name
        self.inventory = {}
        if inventory is not None:
            for path in sorted((inventory / "group_vars" / "all").glob("*.yml")):
                self.inventory.update(_load(path))
            self.inventory.update(SECRETS)
        else:
            self.inventory.update(DIRECT_SECRETS)
        layout = self.inventory.get("elasticsearch_layout", "single-node")
        self.layout = layout
        self.logging_hosts = ["logs-1"] if layout == "single-node" else ["logs-1", "logs-2", "logs-3"]
        self.node = "gpu-node-1"
        self.hostvars = {h: {"ansible_host": "10.20.0.%d" % (i + 11)} for i, h in enumerate(self.logging_hosts)}
        self.hostvars[self.node] = {"ansible_host": "10.20.1.7"}

    def variables(self, role, host, **extra):
        role_dir = ROOT / "roles" / role
        merged = {}
        merged.update(_load(role_dir / "defaults" / "main.yml"))
        merged.update(self.inventory)
        merged.update(_load(role_dir / "vars" / "main.yml"))
        merged = _trust(merged)
        merged.update({
            "inventory_hostname": host,
            "groups": {"llmops_logging": self.logging_hosts, "llmops_nodes": [self.node] + self.logging_hosts,
                       "all": [self.node] + self.logging_hosts},
            "hostvars": self.hostvars,
            "ansible_managed": "Ansible managed",
            "ansible_check_mode": False,
            "ansible_facts": {"os_family": "Debian", "hostname": host, "fqdn": host + ".example.internal",
                              "default_ipv4": {"address": self.hostvars[host]["ansible_host"]}},
        })
        merged.update(extra)
        return merged

    def value(self, role, host, expression, **extra):
        templar = Templar(loader=LOADER, variables=self.variables(role, host, **extra))
        return templar.template(trust_as_template(expression))

    def render(self, role, template, host=None, **extra):
        host = host or (self.node if role == "filebeat" else self.logging_hosts[0])
        templates = ROOT / "roles" / role / "templates"
        source = (templates / template).read_text()
        # As the template action renders a file (trim_blocks on, backslashes not escaped).
        templar = Templar(loader=LOADER).copy_with_new_env(
            searchpath=[str(templates)], available_variables=self.variables(role, host, **extra))
        out = templar.template(trust_as_template(source), escape_backslashes=False,
                               overrides=dict(trim_blocks=True, lstrip_blocks=False, newline_sequence="\n"))
        assert isinstance(out, str)
        assert "{{" not in out.replace("{{{", "") or template.startswith("ingest-pipeline"), \
            "%s: unrendered Jinja left in the output" % template
        return out


SCENARIOS = [Scenario("defaults")] + [Scenario("%s-%s" % (p.parent.name, p.name), p) for p in INVENTORIES]
IDS = [s.name for s in SCENARIOS]


# ---------------------------------------------------------------------------------------------------
# What the serving image writes: run its ECS logger, and read the other event_fields it logs.

def _load_accesslog():
    spec = importlib.util.spec_from_file_location("llmops_serving_accesslog_under_test", SERVING_SRC / "accesslog.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _leaves(doc, prefix=""):
    for key, value in doc.items():
        path = prefix + key
        if isinstance(value, dict):
            yield from _leaves(value, path + ".")
        else:
            yield path, value


def serving_log_fields():
    """Field path -> an example value, from the access logger run with every optional argument."""
    accesslog = _load_accesslog()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(accesslog.ECSFormatter())
    access = logging.getLogger(accesslog.ACCESS_LOGGER)
    saved = access.handlers[:], access.propagate, access.level
    access.handlers[:] = [handler]
    access.propagate = False
    access.setLevel(logging.INFO)
    try:
        accesslog.access_log(
            request_id="cmpl-0123", method="POST", path="/v1/completions", status=200, duration_s=0.25,
            client_ip="10.1.2.3", principal="team-a", user_agent="curl/8.0",
            usage={"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            # What app.py adds when log_prompts is enabled (see the "extra" it passes).
            extra={"llm.prompt": ["hello"], "llm.completion": ["world"]})
        try:
            raise RuntimeError("engine failed")
        except RuntimeError:
            access.error("failure", exc_info=True)
    finally:
        access.handlers[:], access.propagate, dummy_level = saved
        access.setLevel(saved[2])
    fields = {}
    for line in stream.getvalue().splitlines():
        fields.update(dict(_leaves(json.loads(line))))
    return fields


def other_event_fields():
    """Keys of every literal `event_fields` dict the serving package logs (model loading, draining)."""
    found = {}
    for path in SERVING_SRC.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value == "event_fields" and isinstance(value, ast.Dict):
                        for k in value.keys:
                            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                                found[k.value] = path.name
    return found


def mapping_of(properties, dotted):
    node = {"properties": properties}
    for part in dotted.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node


NUMERIC = {"long", "integer", "short", "byte", "double", "float", "scaled_float", "unsigned_long"}
STRINGY = {"keyword", "constant_keyword", "wildcard", "text", "match_only_text"}


def sensible_type(field, value, mapping_type):
    if field == "@timestamp":
        return mapping_type in ("date", "date_nanos")
    if field.endswith(".ip"):
        return mapping_type == "ip"
    if isinstance(value, bool):
        return mapping_type == "boolean"
    if isinstance(value, (int, float)):
        return mapping_type in NUMERIC
    if isinstance(value, list):
        return all(sensible_type(field, v, mapping_type) for v in value)
    return mapping_type in STRINGY


# ---------------------------------------------------------------------------------------------------
# Coverage: every template a role has is rendered by a test below, and every task's template exists.

RENDERED = {
    "elasticsearch": {"elasticsearch.yml.j2", "jvm-heap.options.j2", "ilm-policy.json.j2", "ingest-pipeline.json.j2",
                      "index-template-serving.json.j2", "index-template-journald.json.j2", "writer-role.json.j2"},
    "kibana": {"kibana.yml.j2", "kibana.env.j2", "systemd-override.conf.j2", "saved-objects.ndjson.j2"},
    "filebeat": {"filebeat.yml.j2", "filebeat.env.j2", "systemd-override.conf.j2"},
}


def _task_templates(role):
    names = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "ansible.builtin.template" and isinstance(value, dict):
                    names.add(value["src"])
                elif key == "template" and isinstance(value, str) and value.endswith(".j2"):
                    names.add(value)  # api.yml's list of API bodies
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in (ROOT / "roles" / role / "tasks").glob("*.yml"):
        walk(yaml.safe_load(path.read_text()))
    return names


@pytest.mark.parametrize("role", ROLES)
def test_every_template_is_rendered_and_used(role):
    on_disk = {p.name for p in (ROOT / "roles" / role / "templates").iterdir()}
    assert on_disk == RENDERED[role], "templates without a rendering test (or tests for missing templates)"
    used = {n for n in _task_templates(role) if "{{" not in n}
    assert used == on_disk, "templates the tasks write differ from those on disk: %s" % (used ^ on_disk)


# ---------------------------------------------------------------------------------------------------
# Elasticsearch

def _es_json(scenario, template, **extra):
    return json.loads(scenario.render("elasticsearch", template, **extra))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_elasticsearch_yml_matches_the_layout(scenario):
    for host in scenario.logging_hosts:
        config = yaml.safe_load(scenario.render("elasticsearch", "elasticsearch.yml.j2", host=host))
        assert config["node.name"] == host
        assert config["cluster.name"]
        assert config["xpack.security.enabled"] is True
        for layer in ("transport", "http"):
            ssl = config["xpack.security.%s.ssl" % layer]
            assert ssl["enabled"] is True
            assert ssl["key"].endswith("node.key") and ssl["certificate"].endswith("node.crt")
            assert ssl["certificate_authorities"] == ["certs/llmops/ca.crt"]
        assert config["xpack.security.transport.ssl"]["verification_mode"] == "full"
        if scenario.layout == "single-node":
            assert len(scenario.logging_hosts) == 1
            assert config["discovery.type"] == "single-node"
            # Elasticsearch refuses to start with these next to discovery.type single-node.
            assert "discovery.seed_hosts" not in config and "cluster.initial_master_nodes" not in config
        else:
            assert "discovery.type" not in config
            addresses = [scenario.hostvars[h]["ansible_host"] for h in scenario.logging_hosts]
            assert config["discovery.seed_hosts"] == ["%s:%d" % (a, config["transport.port"]) for a in addresses]
            assert config["cluster.initial_master_nodes"] == scenario.logging_hosts
            assert len(config["cluster.initial_master_nodes"]) >= 3
        formed = yaml.safe_load(scenario.render("elasticsearch", "elasticsearch.yml.j2", host=host,
                                                __elasticsearch_bootstrapped=True))
        assert "cluster.initial_master_nodes" not in formed, "never bootstrap again once the cluster formed"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_jvm_heap_options(scenario):
    lines = [l for l in scenario.render("elasticsearch", "jvm-heap.options.j2").splitlines()
             if l and not l.startswith("#")]
    heap = scenario.value("elasticsearch", "logs-1", "{{ elasticsearch_heap_size }}")
    if heap:
        assert lines == ["-Xms" + heap, "-Xmx" + heap]
        assert re.fullmatch(r"\d+[kmgKMG]", heap)
    else:
        assert lines == []


ILM_PHASE_ACTIONS = {  # documented in "Index lifecycle actions" (which action is allowed in which phase)
    "hot": {"set_priority", "unfollow", "rollover", "readonly", "downsample", "shrink", "forcemerge",
            "searchable_snapshot"},
    "warm": {"set_priority", "unfollow", "readonly", "downsample", "allocate", "migrate", "shrink", "forcemerge"},
    "cold": {"set_priority", "unfollow", "readonly", "downsample", "searchable_snapshot", "allocate", "migrate"},
    "frozen": {"unfollow", "searchable_snapshot"},
    "delete": {"wait_for_snapshot", "delete"},
}
ROLLOVER_CONDITIONS = {"max_age", "max_docs", "max_size", "max_primary_shard_size", "max_primary_shard_docs",
                       "min_age", "min_docs", "min_size", "min_primary_shard_size", "min_primary_shard_docs"}
TIME_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 1e-3, "micros": 1e-6, "nanos": 1e-9}


def _seconds(value):
    match = re.fullmatch(r"(\d+)(d|h|m|s|ms|micros|nanos)", value)
    assert match, "%r is not an Elasticsearch time value" % value
    return int(match.group(1)) * TIME_UNITS[match.group(2)]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_ilm_policy_has_the_documented_shape(scenario):
    body = _es_json(scenario, "ilm-policy.json.j2")
    assert set(body) == {"policy"}
    policy = body["policy"]
    assert set(policy) <= {"phases", "_meta"} and isinstance(policy["phases"], dict)
    phases = policy["phases"]
    assert set(phases) <= set(ILM_PHASE_ACTIONS)
    assert {"hot", "delete"} <= set(phases)
    for name, phase in phases.items():
        assert set(phase) <= {"min_age", "actions"}, name
        assert isinstance(phase["actions"], dict)
        assert set(phase["actions"]) <= ILM_PHASE_ACTIONS[name], (name, phase["actions"])
        _seconds(phase.get("min_age", "0ms"))
    rollover = phases["hot"]["actions"]["rollover"]
    assert rollover and set(rollover) <= ROLLOVER_CONDITIONS
    assert re.fullmatch(r"\d+(b|kb|mb|gb|tb|pb)", rollover["max_primary_shard_size"])
    order = [p for p in ("hot", "warm", "cold", "frozen", "delete") if p in phases]
    ages = [_seconds(phases[p].get("min_age", "0ms")) for p in order]
    assert ages == sorted(ages) and ages[-1] > ages[0], "phase min_age must grow: %s" % list(zip(order, ages))
    warm = scenario.value("elasticsearch", "logs-1", "{{ elasticsearch_ilm_warm_enabled }}")
    assert ("warm" in phases) == bool(warm)


PIPELINE_KEYS = {"description", "processors", "on_failure", "version", "_meta", "deprecated"}
PROCESSORS = {"set", "append", "remove", "rename", "uppercase", "lowercase", "user_agent", "date", "convert",
              "json", "geoip", "grok", "dissect", "script", "pipeline", "fail", "drop", "trim", "split"}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_ingest_pipeline_has_the_documented_shape(scenario):
    body = _es_json(scenario, "ingest-pipeline.json.j2")
    assert set(body) <= PIPELINE_KEYS and body["processors"]
    for processor in body["processors"] + body.get("on_failure", []):
        assert isinstance(processor, dict) and len(processor) == 1
        (kind, options), = processor.items()
        assert kind in PROCESSORS, kind
        assert "field" in options
    template = _es_json(scenario, "index-template-serving.json.j2")
    properties = template["template"]["mappings"]["properties"]
    for processor in body["processors"]:
        (kind, options), = processor.items()
        if kind != "remove":
            assert mapping_of(properties, options["field"]), "the pipeline writes %s, which is not mapped" % options["field"]
    with_removal = json.loads(scenario.render("elasticsearch", "ingest-pipeline.json.j2",
                                              elasticsearch_pipeline_remove_fields=["llm.prompt", "llm.completion"]))
    assert {"remove": {"field": ["llm.prompt", "llm.completion"], "ignore_missing": True,
                       "tag": "remove-configured-fields"}} in with_removal["processors"]


TEMPLATE_KEYS = {"index_patterns", "template", "composed_of", "priority", "version", "_meta", "data_stream",
                 "allow_auto_create", "ignore_missing_component_templates", "deprecated"}
TEMPLATE_BODY_KEYS = {"settings", "mappings", "aliases", "lifecycle"}
FIELD_TYPES = NUMERIC | STRINGY | {"date", "date_nanos", "ip", "boolean", "object", "nested", "flattened"}


def _check_properties(properties, path=""):
    for name, field in properties.items():
        assert isinstance(field, dict), path + name
        if "properties" in field:
            assert field.get("type", "object") in ("object", "nested"), path + name
            _check_properties(field["properties"], path + name + ".")
        else:
            assert field.get("type") in FIELD_TYPES, "%s%s: %s" % (path, name, field.get("type"))
            for sub in field.get("fields", {}).values():
                assert sub.get("type") in FIELD_TYPES


@pytest.mark.parametrize("template", ["index-template-serving.json.j2", "index-template-journald.json.j2"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_index_templates_have_the_documented_shape(scenario, template):
    body = _es_json(scenario, template)
    assert set(body) <= TEMPLATE_KEYS
    assert body["index_patterns"] and all(isinstance(p, str) for p in body["index_patterns"])
    assert body["data_stream"] == {}, "a data stream template (logs are append-only)"
    # Elasticsearch's built-in logs template matches logs-*-* at priority 100; equal priorities with
    # overlapping patterns are rejected, a lower one would lose.
    assert isinstance(body["priority"], int) and body["priority"] > 100
    assert set(body["template"]) <= TEMPLATE_BODY_KEYS
    settings = body["template"]["settings"]
    policy = _es_json(scenario, "ilm-policy.json.j2")
    assert settings["index.lifecycle.name"] == scenario.value("elasticsearch", "logs-1", "{{ elasticsearch_ilm_policy_name }}")
    assert policy["policy"]["phases"]
    replicas = settings["index.number_of_replicas"]
    assert replicas == (0 if scenario.layout == "single-node" else 1)
    assert replicas < len(scenario.logging_hosts), "replicas could never be allocated"
    _check_properties(body["template"]["mappings"]["properties"])
    for pattern in body["index_patterns"]:
        assert re.fullmatch(r"logs-[a-z0-9_.]+-\*", pattern), pattern
    if template == "index-template-serving.json.j2":
        pipeline = scenario.value("elasticsearch", "logs-1", "{{ elasticsearch_pipeline_name }}")
        assert settings["index.default_pipeline"] == pipeline


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_every_serving_log_field_is_mapped_with_a_sensible_type(scenario):
    properties = _es_json(scenario, "index-template-serving.json.j2")["template"]["mappings"]["properties"]
    fields = serving_log_fields()
    # The logger's documented fields must all be there, or this derivation is broken.
    assert {"@timestamp", "event.duration", "client.ip", "http.response.status_code", "url.path",
            "user_agent.original", "llm.usage.total_tokens", "llm.prompt", "error.stack_trace"} <= set(fields)
    wrong = {}
    for field, value in sorted(fields.items()):
        mapping = mapping_of(properties, field)
        if mapping is None or not sensible_type(field, value, mapping.get("type")):
            wrong[field] = (value, None if mapping is None else mapping.get("type"))
    assert not wrong, "serving log fields unmapped or mapped with the wrong type: %s" % wrong
    others = other_event_fields()
    assert "llm.model.path" in others, "other_event_fields() found nothing: the serving code changed shape"
    unmapped = {f: src for f, src in others.items() if mapping_of(properties, f) is None}
    assert not unmapped, "event_fields logged by the serving image but not mapped: %s" % unmapped


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_writer_role_covers_the_data_streams(scenario):
    body = _es_json(scenario, "writer-role.json.j2")
    assert set(body) <= {"cluster", "indices", "applications", "run_as", "metadata", "transient_metadata",
                         "description", "remote_indices"}
    granted = [p for entry in body["indices"] for p in entry["names"]
               if {"create_doc", "auto_configure"} <= set(entry["privileges"])]
    for template in ("index-template-serving.json.j2", "index-template-journald.json.j2"):
        for pattern in _es_json(scenario, template)["index_patterns"]:
            assert pattern in granted
    assert not {"all", "manage", "manage_security"} & set(body["cluster"]), "least privilege"


# ---------------------------------------------------------------------------------------------------
# Kibana

def _env_file(text):
    """Parse KEY="value" lines the way systemd's EnvironmentFile reads double-quoted values."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r'([A-Z_][A-Z0-9_]*)="((?:[^"\\]|\\.)*)"', line)
        assert match, "not a quoted assignment: %r" % line
        values[match.group(1)] = re.sub(r"\\(.)", r"\1", match.group(2))
    return values


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_kibana_yml(scenario):
    config = yaml.safe_load(scenario.render("kibana", "kibana.yml.j2"))
    hosts = config["elasticsearch.hosts"]
    assert hosts == ["https://%s:9200" % scenario.hostvars[h]["ansible_host"] for h in scenario.logging_hosts]
    assert config["elasticsearch.ssl.verificationMode"] == "full"
    assert config["elasticsearch.ssl.certificateAuthorities"] == ["/etc/kibana/certs/ca.crt"]
    assert config["server.ssl.enabled"] is True
    assert config["server.ssl.certificate"] and config["server.ssl.key"]
    assert config["elasticsearch.username"] == "kibana_system"
    # No secret in kibana.yml: only references to the environment file.
    assert config["elasticsearch.password"] == "${KIBANA_ES_PASSWORD}"
    for key in ("xpack.security.encryptionKey", "xpack.encryptedSavedObjects.encryptionKey",
                "xpack.reporting.encryptionKey"):
        assert config[key] == "${KIBANA_ENCRYPTION_KEY}"
    text = yaml.safe_dump(config)
    for secret in SECRETS.values():
        assert secret not in text


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_kibana_environment_file_round_trips_the_secrets(scenario):
    env = _env_file(scenario.render("kibana", "kibana.env.j2"))
    expected_pw = scenario.value("kibana", "logs-1", "{{ kibana_elasticsearch_password }}")
    assert env == {"KIBANA_ES_PASSWORD": expected_pw,
                   "KIBANA_ENCRYPTION_KEY": scenario.value("kibana", "logs-1", "{{ kibana_encryption_key }}")}
    assert expected_pw == SECRETS["vault_llmops_kibana_system_password"]
    dropin = scenario.render("kibana", "systemd-override.conf.j2")
    assert "[Service]" in dropin and "EnvironmentFile=/etc/kibana/llmops.env" in dropin


def _ndjson(scenario):
    lines = [l for l in scenario.render("kibana", "saved-objects.ndjson.j2").splitlines() if l.strip()]
    return [json.loads(l) for l in lines]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_saved_objects_parse_and_reference_the_data_view(scenario):
    objects = _ndjson(scenario)
    ids = {(o["type"], o["id"]) for o in objects}
    assert len(ids) == len(objects), "duplicate saved object ids"
    data_view = scenario.value("kibana", "logs-1", "{{ kibana_serving_data_view_id }}")
    assert ("index-pattern", data_view) in ids
    for obj in objects:
        assert set(obj) <= {"type", "id", "attributes", "references", "migrationVersion", "coreMigrationVersion",
                            "typeMigrationVersion"}
        assert obj["attributes"]["title"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in ids, "%s references a missing %s" % (obj["id"], ref)
    searches = [o for o in objects if o["type"] == "search"]
    dashboards = [o for o in objects if o["type"] == "dashboard"]
    assert searches and dashboards
    serving_template = _es_json(scenario, "index-template-serving.json.j2")
    properties = serving_template["template"]["mappings"]["properties"]
    for search in searches:
        source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        ref = [r for r in search["references"] if r["name"] == source["indexRefName"]]
        assert ref == [{"name": source["indexRefName"], "type": "index-pattern", "id": data_view}]
        for column in search["attributes"]["columns"]:
            assert mapping_of(properties, column), "column %s is not a mapped field" % column
    for dashboard in dashboards:
        panels = json.loads(dashboard["attributes"]["panelsJSON"])
        names = {r["name"] for r in dashboard["references"]}
        assert panels and all(p["panelRefName"] in names for p in panels)
    # The data views match what Filebeat writes and the templates map.
    views = {o["id"]: o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"}
    serving_stream = yaml.safe_load(scenario.render("filebeat", "filebeat.yml.j2"))["filebeat.inputs"][0]["index"]
    assert fnmatch.fnmatch(serving_stream, views[data_view])
    assert views[data_view] in serving_template["index_patterns"]


# ---------------------------------------------------------------------------------------------------
# Filebeat

@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_filebeat_yml_inputs_and_output(scenario):
    config = yaml.safe_load(scenario.render("filebeat", "filebeat.yml.j2"))
    inputs = {i["id"]: i for i in config["filebeat.inputs"]}
    assert set(inputs) == {"llmops-serving", "llmops-journald"}
    serving = inputs["llmops-serving"]
    assert serving["type"] == "filestream" and serving["paths"]
    parsers = [next(iter(p)) for p in serving["parsers"]]
    assert parsers == ["container", "ndjson"], "unwrap the runtime's line, then decode the image's JSON"
    ndjson = serving["parsers"][1]["ndjson"]
    assert ndjson["target"] == "" and ndjson["overwrite_keys"] is True
    assert inputs["llmops-journald"]["type"] == "journald"
    templates = {t: _es_json(scenario, t)["index_patterns"]
                 for t in ("index-template-serving.json.j2", "index-template-journald.json.j2")}
    for input_id, template in (("llmops-serving", "index-template-serving.json.j2"),
                               ("llmops-journald", "index-template-journald.json.j2")):
        index = inputs[input_id]["index"]
        assert any(fnmatch.fnmatch(index, p) for p in templates[template]), (index, templates[template])
        fields = inputs[input_id]["processors"][0]["add_fields"]
        assert fields["target"] == "data_stream"
        stream = fields["fields"]
        assert index == "logs-%s-%s" % (stream["dataset"], stream["namespace"])
        assert "-" not in stream["namespace"] and stream["namespace"] == stream["namespace"].lower()
    output = config["output.elasticsearch"]
    assert output["hosts"] == ["https://%s:9200" % scenario.hostvars[h]["ansible_host"] for h in scenario.logging_hosts]
    assert output["ssl.certificate_authorities"] == ["/etc/filebeat/certs/ca.crt"]
    assert output["ssl.verification_mode"] == "full"
    assert output["password"] == "${LLMOPS_ES_PASSWORD}"
    assert output["username"] == scenario.value("elasticsearch", "logs-1", "{{ elasticsearch_filebeat_username }}")
    # The elasticsearch role owns templates and ILM; Filebeat must not install its own.
    assert config["setup.template.enabled"] is False and config["setup.ilm.enabled"] is False
    assert not [k for k in config if k.startswith("output.") and k != "output.elasticsearch"]
    for secret in SECRETS.values():
        assert secret not in yaml.safe_dump(config)


def test_filebeat_variants():
    scenario = SCENARIOS[0]
    plain = yaml.safe_load(scenario.render("filebeat", "filebeat.yml.j2", filebeat_serving_format="ndjson",
                                           filebeat_journald_units=["kubelet.service"]))
    serving, journald = plain["filebeat.inputs"]
    assert [next(iter(p)) for p in serving["parsers"]] == ["ndjson"]
    assert journald["include_matches.match"] == ["_SYSTEMD_UNIT=kubelet.service"]
    only_journal = yaml.safe_load(scenario.render("filebeat", "filebeat.yml.j2", filebeat_serving_enabled=False))
    assert [i["id"] for i in only_journal["filebeat.inputs"]] == ["llmops-journald"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
def test_filebeat_environment_file(scenario):
    env = _env_file(scenario.render("filebeat", "filebeat.env.j2"))
    assert env == {"LLMOPS_ES_PASSWORD": SECRETS["vault_llmops_filebeat_password"]}
    dropin = scenario.render("filebeat", "systemd-override.conf.j2")
    assert "EnvironmentFile=/etc/filebeat/llmops.env" in dropin


# ---------------------------------------------------------------------------------------------------
# Inventories and role contracts

def _required_secrets(role, scenario):
    return scenario.value(role, "logs-1", "{{ __%s_required_secrets }}" % role)


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: "%s-%s" % (p.parent.name, p.name))
def test_inventory_logging_values(inventory):
    values = yaml.safe_load((inventory / "group_vars" / "all" / "logging.yml").read_text())
    assert values["llmops_logging_enabled"] is True
    assert values["elasticsearch_layout"] == ("single-node" if inventory.name == "dev" else "multi-node")
    if inventory.name == "prod":
        assert values["elasticsearch_layout"] == "multi-node"
    secrets = [k for k in values if re.search(r"password|passphrase|encryption_key", k)]
    assert secrets
    for key in secrets:
        assert re.fullmatch(r"\{\{ vault_[a-z0-9_]+ \}\}", values[key]), "%s must be a vault reference" % key
    scenario = next(s for s in SCENARIOS if s.name == "%s-%s" % (inventory.parent.name, inventory.name))
    for role in ("elasticsearch", "kibana"):
        for name in _required_secrets(role, scenario):
            assert name in values, "%s needs %s" % (role, name)
    assert "filebeat_elasticsearch_password" in values


def test_local_inventory_keeps_logging_off():
    values = yaml.safe_load((ROOT / "inventories/local/group_vars/all/logging.yml").read_text())
    assert values == {"llmops_logging_enabled": False}


@pytest.mark.parametrize("role", ROLES)
def test_secrets_are_documented_without_defaults(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    options = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = options["argument_specs"]["main"]["options"]
    secret_names = {k for k in options if re.search(r"password$|passphrase$|encryption_key$", k)}
    assert secret_names
    for name in secret_names:
        assert name not in defaults, "%s must not have a default" % name
        assert "default" not in options[name] and options[name]["description"]
    if role != "filebeat":
        assert set(_required_secrets(role, SCENARIOS[0])) <= secret_names


def test_the_three_roles_pin_the_same_version_and_key():
    pins = {}
    for role in ROLES:
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        pins[role] = (defaults[role + "_version"], defaults[role + "_repository_key_fingerprint"],
                      defaults[role + "_repository_apt_url"])
    assert len(set(pins.values())) == 1, pins
    version, fingerprint, dummy_url = pins["elasticsearch"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert re.fullmatch(r"[0-9A-F]{40}", fingerprint)
