"""The llm_serving role's manifests, rendered by the role itself for real inventories, validated.

Each case runs playbooks/deploy_serving.yml with llm_serving_apply_enabled=false against an inventory
(its static hosts file and group_vars, so no cloud API is called), with test values for the vault
variables, and reads back the files the role wrote. Every manifest is then:

* validated with kubernetes-validate (strict: unknown fields fail) for each Kubernetes version in
  KUBERNETES_VERSIONS, or, for the KEDA ScaledObject and the Prometheus-operator ServiceMonitor,
  against the openAPIV3Schema of their published CRDs (tests/schemas/, see its README);
* checked against the platform's policies (rolling updates never lose capacity, the pod runs non-root
  on a read-only root filesystem with no capabilities and the RuntimeDefault seccomp profile, shutdown
  outlasts the drain, GPU pools get their GPUs, tolerations and node selection, one autoscaler at most,
  no key in clear anywhere).

Failure cases check that a missing secret or a forbidden combination stops the role with a message
naming the variable.
"""
import base64
import concurrent.futures
import hashlib
import json
import os
import pathlib
import secrets
import subprocess
import tempfile

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "tests" / "schemas"
# kubernetes-validate 1.37.0 (requirements/dev.txt) ships schemas for 1.29.0 ... 1.37.0.
KUBERNETES_VERSIONS = ["1.29", "1.30", "1.31", "1.32", "1.33"]
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobject_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitor_v1.json",
}
CLOUD_INVENTORIES = ["%s/%s" % (cloud, env) for cloud in ("aws", "gcp", "azure") for env in ("dev", "prod")]
INVENTORIES = CLOUD_INVENTORIES + ["local"]


def _public_key_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# What Ansible Vault would hold for the cloud inventories (group_vars/all/serving.yml names them).
VAULT = {
    "vault_llm_serving_smoke_key": secrets.token_urlsafe(36),
    "vault_llm_serving_gateway_key_sha256": hashlib.sha256(b"gateway key held elsewhere").hexdigest(),
    "vault_llm_serving_watermark_key": secrets.token_hex(32),
    "vault_llm_serving_jwt_public_key": _public_key_pem(),
    "vault_llm_serving_weights_key": secrets.token_hex(32),
}


class Rendered(object):
    def __init__(self, inventory, proc, manifest_dir, home):
        self.inventory = inventory
        self.proc = proc
        self.dir = manifest_dir
        self.home = home
        self.files = {p.name: p.read_text() for p in sorted(manifest_dir.glob("*.yaml"))} if manifest_dir.is_dir() else {}
        self.docs = [doc for text in self.files.values() for doc in yaml.safe_load_all(text) if doc]

    @property
    def output(self):
        return self.proc.stdout + self.proc.stderr

    def one(self, kind):
        found = [d for d in self.docs if d["kind"] == kind]
        assert len(found) == 1, "%s: expected one %s, found %d" % (self.inventory, kind, len(found))
        return found[0]

    def kinds(self):
        return sorted(d["kind"] for d in self.docs)


def render(inventory, tmp, *extra_vars):
    work = pathlib.Path(tempfile.mkdtemp(prefix="llm-serving-", dir=tmp))
    manifest_dir, home = work / "manifests", work / "home"
    home.mkdir()
    (work / "vault.json").write_text(json.dumps(VAULT))
    env = dict(os.environ, HOME=str(home), ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
               LLMOPS_SERVING_IMAGE="registry.invalid/llmops/serving:1.0.0",
               LLMOPS_MODEL_FETCH_IMAGE="registry.invalid/tools/aws-cli:2")
    cmd = ["ansible-playbook", "-i", "inventories/%s/hosts.yml" % inventory, "playbooks/deploy_serving.yml",
           "-e", "@%s" % (work / "vault.json"), "-e", "llm_serving_apply_enabled=false",
           "-e", "llm_serving_manifest_dir=%s" % manifest_dir]
    for extra in extra_vars:
        cmd += ["-e", extra]
    proc = subprocess.run(cmd, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=600, check=False)
    return Rendered(inventory, proc, manifest_dir, home)


FAILURES = {
    # name: (inventory, extra vars, what the message must name)
    "no-api-keys": ("local", ['{"llm_serving_api_keys": []}'], "llm_serving_api_keys must list at least one key"),
    "short-key": ("local", ['{"llm_serving_api_keys": [{"name": "a", "key": "short"}]}'], "llm_serving_api_keys must list"),
    "watermark-without-key": ("aws/dev", ['{"llm_serving_watermark_key": ""}'], "llm_serving_watermark_enabled needs llm_serving_watermark_key"),
    "hpa-and-keda": ("aws/prod", ['{"llm_serving_hpa_enabled": true}'], "llm_serving_hpa_enabled and llm_serving_keda_enabled are both true"),
    "grace-shorter-than-drain": ("gcp/dev", ['{"llm_serving_termination_grace_period_seconds": 20}'],
                                 "llm_serving_termination_grace_period_seconds (20) must be"),
    "no-image": ("azure/dev", ['{"llm_serving_image": ""}'], "llm_serving_image is empty"),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """All renderings at once, three at a time (each is one ansible-playbook run)."""
    tmp = tmp_path_factory.mktemp("llm-serving")
    jobs = {("ok", inv): (inv, ()) for inv in INVENTORIES}
    jobs.update({("fail", name): (case[0], tuple(case[1])) for name, case in FAILURES.items()})
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {key: pool.submit(render, inv, tmp, *extra) for key, (inv, extra) in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def ok(rendered, inventory):
    result = rendered[("ok", inventory)]
    assert result.proc.returncode == 0, "rendering for %s failed:\n%s" % (inventory, result.output[-4000:])
    return result


def cluster(inventory):
    with open(ROOT / "inventories" / inventory / "group_vars" / "all" / "cluster.yml") as handle:
        return yaml.safe_load(handle)["llmops_cluster"]


def serving_vars(inventory):
    with open(ROOT / "inventories" / inventory / "group_vars" / "all" / "serving.yml") as handle:
        return yaml.safe_load(handle)


# --- schema validity ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_for_kubernetes_version(rendered, inventory, version):
    result = ok(rendered, inventory)
    checked = 0
    for doc in result.docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail("%s %s/%s is invalid for Kubernetes %s: %s"
                        % (inventory, doc["kind"], doc["metadata"]["name"], version, exc.message))
        checked += 1
    assert checked >= 8, "%s: only %d core manifests rendered (%s)" % (inventory, checked, result.kinds())


def test_installed_kubernetes_validate_has_the_versions():
    # validate() silently falls back to the newest older schema; make sure each version has its own.
    for version in KUBERNETES_VERSIONS:
        assert any(v.startswith(version + ".") for v in kubernetes_validate.utils.all_versions()), version


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_custom_resources_validate_against_their_crds(rendered, inventory):
    result = ok(rendered, inventory)
    for doc in result.docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_SCHEMAS:
            schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
            jsonschema.Draft7Validator(schema).validate(doc)


def test_crd_schemas_reject_a_broken_resource():
    """The stored schemas are strict enough to catch a typo (otherwise the test above proves nothing)."""
    keda = json.loads((SCHEMAS / CRD_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")]).read_text())
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [{"metadata": {}}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(keda).validate(bad)
    monitor = json.loads((SCHEMAS / CRD_SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")]).read_text())
    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
           "spec": {"selector": {}, "endpoints": [{"interval": "thirty seconds"}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(monitor).validate(bad)


def test_a_broken_manifest_fails_kubernetes_validate(rendered):
    deployment = ok(rendered, "aws/prod").one("Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.33", strict=True)


# --- policies ----------------------------------------------------------------------------------------------

def containers(deployment):
    spec = deployment["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_rolling_updates_never_lose_capacity(rendered, inventory):
    deployment = ok(rendered, inventory).one("Deployment")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_pod_is_locked_down(rendered, inventory):
    result = ok(rendered, inventory)
    deployment = result.one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert result.one("ServiceAccount")["automountServiceAccountToken"] is False
    for container in containers(deployment):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], container["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp, "%s: no writable /tmp" % container["name"]
        volume = [v for v in pod["volumes"] if v["name"] == tmp[0]["name"]][0]
        assert "emptyDir" in volume
    namespace = result.one("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_probes_and_shutdown(rendered, inventory):
    result = ok(rendered, inventory)
    deployment = result.one("Deployment")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert server["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/livez"
    prestop = int(server["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = float(result.one("ConfigMap")["data"]["LLMOPS_DRAIN_GRACE_SECONDS"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > prestop + drain, "grace %s must exceed preStop %s + drain %s" % (grace, prestop, drain)


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_one_autoscaler_at_most(rendered, inventory):
    result = ok(rendered, inventory)
    kinds = result.kinds()
    assert not ("HorizontalPodAutoscaler" in kinds and "ScaledObject" in kinds)
    deployment = result.one("Deployment")
    autoscaled = "HorizontalPodAutoscaler" in kinds or "ScaledObject" in kinds
    # Under an autoscaler the replica count is the autoscaler's: applying one would fight it.
    assert ("replicas" in deployment["spec"]) is not autoscaled


@pytest.mark.parametrize("inventory", CLOUD_INVENTORIES)
def test_gpu_pool_placement_and_resources(rendered, inventory):
    deployment = ok(rendered, inventory).one("Deployment")
    spec = cluster(inventory)
    pool = [p for p in spec["node_pools"] if p["name"] == serving_vars(inventory)["llm_serving_node_pool"]][0]
    assert pool.get("gpu"), "%s: the serving pool has no GPU" % inventory
    pod = deployment["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == pool["gpu"]["count"]
    assert resources["requests"]["nvidia.com/gpu"] == pool["gpu"]["count"]
    for key, value in pool.get("labels", {}).items():
        assert pod["nodeSelector"][key] == value
    pool_label = {"aws": "eks.amazonaws.com/nodegroup", "gcp": "cloud.google.com/gke-nodepool",
                  "azure": "kubernetes.azure.com/agentpool"}[spec["provider"]]
    assert pod["nodeSelector"][pool_label] == pool["name"]
    taints = pool.get("taints", [])
    if spec["provider"] == "azure" and pool.get("capacity_type") == "spot":
        taints = taints + [{"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}]
    for taint in taints:
        assert {"key": taint["key"], "value": taint["value"], "effect": taint["effect"],
                "operator": "Equal"} in pod["tolerations"], "%s: no toleration for %s" % (inventory, taint)


def test_lab_asks_for_no_gpu(rendered):
    pod = ok(rendered, "local").one("Deployment")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in json.dumps(pod["containers"][0]["resources"])
    assert "nodeSelector" not in pod


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_network_policy_admits_only_ingress_controller_and_prometheus(rendered, inventory):
    result = ok(rendered, inventory)
    policy = result.one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    namespaces = sorted(p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                        for p in sources if "namespaceSelector" in p)
    assert namespaces == ["ingress-nginx", "monitoring"]
    assert all(set(p) <= {"namespaceSelector", "ipBlock"} for p in sources)
    assert policy["spec"]["podSelector"]["matchLabels"] == result.one("Deployment")["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("inventory", CLOUD_INVENTORIES)
def test_ingress_suits_streaming(rendered, inventory):
    ingress = ok(rendered, inventory).one("Ingress")
    annotations = ingress["metadata"]["annotations"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 300
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"].endswith("k")


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_settings_and_keys_are_content_named_and_mounted(rendered, inventory):
    result = ok(rendered, inventory)
    configmap, secret = result.one("ConfigMap"), result.one("Secret")
    assert configmap["immutable"] is True and secret["immutable"] is True
    pod = result.one("Deployment")["spec"]["template"]["spec"]
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert {"name": "secrets", "secret": {"secretName": secret["metadata"]["name"], "defaultMode": 0o440,
                                          "optional": False}} in pod["volumes"]
    lines = base64.b64decode(secret["data"]["api-keys"]).decode().splitlines()
    assert lines and all(len(line.split(":")[1]) == 64 for line in lines)
    for name in ("LLMOPS_JWT_PUBLIC_KEY_FILE", "LLMOPS_WATERMARK_KEY_FILE", "LLMOPS_WEIGHTS_KEY_FILE"):
        if name in configmap["data"]:
            key = configmap["data"][name].rsplit("/", 1)[1]
            assert key in secret["data"], "%s points at %s, which the Secret lacks" % (name, key)


@pytest.mark.parametrize("inventory", CLOUD_INVENTORIES)
def test_no_key_in_clear_in_any_file(rendered, inventory):
    result = ok(rendered, inventory)
    smoke_key = VAULT["vault_llm_serving_smoke_key"]
    everything = "".join(result.files.values())
    assert smoke_key not in everything
    assert base64.b64encode(smoke_key.encode()).decode() not in everything
    assert hashlib.sha256(smoke_key.encode()).hexdigest() in base64.b64decode(result.one("Secret")["data"]["api-keys"]).decode()
    assert smoke_key not in result.output, "the key appears in the playbook output"
    assert VAULT["vault_llm_serving_weights_key"] not in result.output
    assert VAULT["vault_llm_serving_watermark_key"] not in result.output
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in result.dir.glob("*.yaml"))
    assert oct(result.dir.stat().st_mode & 0o777) == "0o700"


def test_prod_fetches_encrypted_weights_with_a_checked_init_container(rendered):
    result = ok(rendered, "aws/prod")
    pod = result.one("Deployment")["spec"]["template"]["spec"]
    fetch = pod["initContainers"][0]
    assert "sha256sum -c SHA256SUMS" in fetch["command"][-1]
    models = [v for v in pod["volumes"] if v["name"] == "models"][0]
    assert "emptyDir" in models
    assert result.one("ConfigMap")["data"]["LLMOPS_WEIGHTS_KEY_FILE"].endswith("/weights.key")


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_disabled_kinds_are_not_rendered(rendered, inventory):
    result = ok(rendered, inventory)
    values = serving_vars(inventory)
    kinds = result.kinds()
    assert ("Ingress" in kinds) == values.get("llm_serving_ingress_enabled", True)
    assert ("ServiceMonitor" in kinds) == values.get("llm_serving_servicemonitor_enabled", False)
    assert ("ScaledObject" in kinds) == values.get("llm_serving_keda_enabled", False)
    assert ("HorizontalPodAutoscaler" in kinds) == values.get("llm_serving_hpa_enabled", False)


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_bad_settings_stop_the_role_naming_the_variable(rendered, name):
    result = rendered[("fail", name)]
    message = FAILURES[name][2]
    assert result.proc.returncode != 0, "%s: the role accepted it" % name
    assert message in " ".join(result.output.split()), "%s: message not found in:\n%s" % (name, result.output[-3000:])
    assert not (result.dir / "03-secret.yaml").exists(), "%s: manifests were written anyway" % name


def test_a_key_store_file_as_awx_injects_it_adds_its_keys(tmp_path):
    """AWX's "LLMOps serving API keys" credential injects llm_serving_api_key_hashes_file (name:sha256 lines,
    as llmops-hash-key prints them) and the smoke key; the role deploys those hashes, and only those."""
    smoke_key = VAULT["vault_llm_serving_smoke_key"]
    digests = {"team-a": hashlib.sha256(smoke_key.encode()).hexdigest(), "team-b": "ab" * 32}
    store = tmp_path / "key_hashes"
    store.write_text("# injected by AWX\nteam-a:%s\nteam-b: sha256:%s\n" % (digests["team-a"], digests["team-b"].upper()))
    result = render("aws/dev", tmp_path, json.dumps({"llm_serving_api_keys": [],
                                                     "llm_serving_api_key_hashes_file": str(store),
                                                     "llm_serving_smoke_api_key": smoke_key}))
    assert result.proc.returncode == 0, result.output[-4000:]
    lines = base64.b64decode(result.one("Secret")["data"]["api-keys"]).decode().split()
    assert lines == ["%s:%s" % item for item in digests.items()]
    assert smoke_key not in result.output


def test_a_malformed_key_store_file_stops_the_role_naming_it(tmp_path):
    store = tmp_path / "key_hashes"
    store.write_text("team-a %s\n" % ("ab" * 32))
    result = render("aws/dev", tmp_path, json.dumps({"llm_serving_api_key_hashes_file": str(store)}))
    assert result.proc.returncode != 0
    assert "llm_serving_api_key_hashes_file (%s) must hold one" % store in " ".join(result.output.split())
    assert not (result.dir / "03-secret.yaml").exists()
