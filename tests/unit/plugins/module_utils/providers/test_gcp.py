"""The GCP (GKE) provider against recorded GKE v1 / Compute v1 REST exchanges.

Nothing between the provider and HTTP is mocked: google-auth's AuthorizedSession (requests) sends real
requests to a loopback server (gcp_fixture_server.py) that replays fixtures/gcp/<scenario>.json in
order, checks method, path, query, JSON body and the bearer token of every request, and fails the test
on any request it did not expect or any exchange left unused.
"""
import pytest
import schema_check

from ansible_collections.llmops.platform.plugins.module_utils import gcp_auth
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers import gcp, gcp_api
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterState, Node
from ansible_collections.llmops.platform.plugins.module_utils.reconcile import apply_plan, plan_absent, plan_present

from gcp_fixture_server import FIXTURES, REGION, gcp_harness, load_scenario, provider_options, start_scenario

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def dev_spec(**gpu_overrides):
    gpu = {"name": "gpu", "count": 1, "min_count": 0, "max_count": 2, "gpu": {"type": "nvidia-l4", "count": 1},
           "zones": ["us-central1-b"], "capacity_type": "spot", "labels": {"llmops.io/role": "gpu"},
           "taints": [GPU_TAINT]}
    gpu.update(gpu_overrides)
    return parse_cluster_spec({
        "name": "llmops-dev", "region": REGION, "kubernetes_version": "1.30", "tags": {"env": "dev"},
        "node_pools": [{"name": "system", "count": 1, "zones": ["us-central1-b"], "labels": {"llmops.io/role": "system"}},
                       gpu]})


def test_every_fixture_names_the_api_it_follows():
    names = sorted(p.stem for p in FIXTURES.glob("*.json"))
    assert len(names) >= 10
    for name in names:
        data = load_scenario(name)
        for exchange in data["exchanges"]:
            assert exchange["api"].split(" ")[0] in ("container.googleapis.com/v1", "compute.googleapis.com/compute/v1")


def test_contract_lifecycle_through_the_harness(request):
    """What test_contract.py::test_lifecycle does, run here against the same harness."""
    harness = gcp_harness(request)
    provider = harness.provider
    pool = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-t4"}, "labels": {"role": "gpu"}}
    pool.update(harness.pool)
    raw = {"name": "ignored-by-harness", "node_pools": [pool]}
    raw.update(harness.cluster)
    spec = parse_cluster_spec(raw)
    cluster = spec.name
    provider.validate(spec)
    assert provider.get_cluster(cluster) is None
    assert provider.list_nodes(cluster) == []

    apply_plan(plan_present(spec, None, provider), spec, provider)
    harness.after_change(cluster)
    provider.wait_for_cluster(cluster, "present", timeout=120)
    state = provider.get_cluster(cluster)
    assert isinstance(state, ClusterState)
    assert state.node_pools["gpu"].count == 1
    assert state.node_pools["gpu"].gpu.type == "nvidia-t4"
    assert state.node_pools["gpu"].labels == {"role": "gpu"}
    assert not plan_present(spec, state, provider).changed
    assert any("llmops-bootstrap" in e for e in provider.events)

    spec.node_pools[0].count = 2
    plan = plan_present(spec, state, provider)
    assert plan.describe() == ["update_node_pool node_pool/gpu (count: 1 -> 2)"]
    apply_plan(plan, spec, provider)
    harness.after_change(cluster)
    provider.wait_for_cluster(cluster, "present", timeout=120)
    nodes = provider.list_nodes(cluster)
    assert [n.name for n in nodes] == sorted(n.name for n in nodes)
    assert all(isinstance(n, Node) and n.pool == "gpu" and n.status == "running" for n in nodes)
    assert len(nodes) == 2 and all(n.connection["ansible_connection"] for n in nodes)
    # The external address when there is one, else the internal one.
    assert [n.address for n in nodes] == ["34.70.1.2", "10.128.0.7"]
    assert nodes[0].connection == {"ansible_connection": "ssh", "ansible_host": "34.70.1.2"}

    apply_plan(plan_absent(cluster, provider.get_cluster(cluster)), spec, provider)
    provider.wait_for_cluster(cluster, "absent", timeout=60)
    assert provider.get_cluster(cluster) is None
    provider.delete_node_pool(cluster, "gpu")
    provider.delete_cluster(cluster)


def test_create_then_second_run_is_unchanged(request):
    provider, server = start_scenario(request, "create", gpu_driver_version="LATEST")
    spec = dev_spec()
    provider.validate(spec)
    assert provider.get_cluster(spec.name) is None
    plan = plan_present(spec, None, provider)
    assert plan.describe() == ["create_cluster cluster/llmops-dev", "create_node_pool node_pool/system",
                               "create_node_pool node_pool/gpu"]
    apply_plan(plan, spec, provider)
    provider.wait_for_cluster(spec.name, "present", timeout=60)
    state = provider.get_cluster(spec.name)
    gpu = state.node_pools["gpu"]
    assert (gpu.count, gpu.min_count, gpu.max_count, gpu.capacity_type) == (1, 0, 2, "spot")
    assert gpu.instance_types == ["g2-standard-4"] and gpu.zones == ["us-central1-b"]
    assert [t.effect for t in gpu.taints] == ["NoSchedule"]
    assert state.kubernetes_version == "1.30" and state.endpoint == "https://34.118.10.20"
    assert not plan_present(spec, state, provider).changed
    assert provider.events == []

    # Second run: a fresh provider (as a new module run) reads the same state back and plans nothing.
    again = gcp.GcpProvider(provider_options(server), REGION)
    second = plan_present(spec, again.get_cluster(spec.name), again)
    assert not second.changed and second.not_updatable == []
    config = again.kubeconfig(spec.name)
    assert config["clusters"][0]["cluster"]["server"] == "https://34.118.10.20"
    assert config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert "token" not in str(config["users"]).lower().replace("installhint", "")


def test_not_updatable_fields_are_reported_not_applied(request):
    provider, dummy = start_scenario(request, "kubeconfig")
    spec = dev_spec(capacity_type="on_demand", instance_types=["g2-standard-8"])
    plan = plan_present(spec, provider.get_cluster(spec.name), provider)
    assert not plan.changed
    assert any("capacity_type" in m for m in plan.not_updatable)
    assert any("instance_types" in m for m in plan.not_updatable)
    config = provider.kubeconfig(spec.name)
    assert config["current-context"] == "gke_llmops-test_us-central1_llmops-dev"
    assert config["clusters"][0]["cluster"]["certificate-authority-data"].startswith("LS0tLS1")
    assert provider.kubeconfig("llmops-gone") is None


def test_capacity_fallback_to_next_zone_then_machine_type(request):
    provider, dummy = start_scenario(request, "capacity_fallback")
    spec = dev_spec(zones=["us-central1-a", "us-central1-b"], min_count=None, max_count=None, taints=[])
    provider.create_node_pool(spec, spec.pool("gpu"))
    assert provider.events == [
        "node_pool/gpu: g2-standard-4 had no capacity in us-central1-a (ZONE_RESOURCE_POOL_EXHAUSTED); "
        "trying g2-standard-4 in us-central1-b",
        "node_pool/gpu: g2-standard-4 had no capacity in us-central1-b (QUOTA_EXCEEDED for the region; the other "
        "zones of us-central1 share that quota); trying g2-standard-8 in us-central1-a",
        "node_pool/gpu: using g2-standard-8 in us-central1-a",
    ]
    # The attempt trace: the regional quota answer skipped nothing here (b was the last zone of g2-standard-4).
    assert [(a["instance_type"], a["zones"], a["outcome"], a["code"]) for a in provider.attempts] == [
        ("g2-standard-4", ["us-central1-a"], "no_capacity", "ZONE_RESOURCE_POOL_EXHAUSTED"),
        ("g2-standard-4", ["us-central1-b"], "no_capacity", "QUOTA_EXCEEDED"),
        ("g2-standard-8", ["us-central1-a"], "created", None)]


def test_capacity_exhausted_everywhere_is_an_error_with_code_and_hint(request):
    provider, dummy = start_scenario(request, "capacity_exhausted")
    spec = dev_spec(zones=["us-central1-a"], instance_types=["g2-standard-4"])
    with pytest.raises(ProviderError) as err:
        provider.create_node_pool(spec, spec.pool("gpu"))
    assert err.value.code == "GCE_STOCKOUT"
    assert "g2-standard-4 in us-central1-a" in err.value.message and "zones" in err.value.hint
    assert provider.events[-1].endswith("(GCE_STOCKOUT); no candidates left")


def test_update_in_place_retries_busy_cluster_and_5xx(request):
    provider, dummy = start_scenario(request, "update_in_place")
    spec = dev_spec(count=2, min_count=1, max_count=4, labels={"llmops.io/role": "gpu", "team": "ml"},
                    taints=[GPU_TAINT, {"key": "dedicated", "value": "llm", "effect": "NoExecute"}])
    spec.kubernetes_version = "1.31"
    changes = {"count": (1, 2), "min_count": (0, 1), "max_count": (2, 4),
               "labels": ({"llmops.io/role": "gpu"}, dict(spec.pool("gpu").labels)), "taints": ([], [])}
    provider.update_node_pool(spec, spec.pool("gpu"), changes)
    provider.update_cluster(spec, {"kubernetes_version": ("1.30", "1.31")})
    provider.wait_for_cluster(spec.name, "present", timeout=10)


def test_replacing_fields_are_refused_in_place():
    provider = gcp.GcpProvider({"project": "p", "access_token": "t"}, REGION)
    spec = dev_spec()
    with pytest.raises(ProviderError) as err:
        provider.update_node_pool(spec, spec.pool("gpu"), {"instance_types": (["a"], ["b"])})
    assert "instance_types" in str(err.value)


def test_gpu_capacity_lists_zones_and_quota(request):
    provider, dummy = start_scenario(request, "gpu_capacity")
    offers = [o.as_dict() for o in provider.gpu_capacity("nvidia-l4", 1, ["us-central1", "europe-west4", "us-west1"])]
    assert {(o["region"], o["zone"]) for o in offers} == {
        ("us-central1", "us-central1-a"), ("us-central1", "us-central1-c"), ("europe-west4", "europe-west4-a")}
    first = offers[0]
    assert first == {"region": "us-central1", "zone": "us-central1-a", "instance_type": "g2-standard-4",
                     "gpus_per_node": 1, "quota_name": "NVIDIA_L4_GPUS", "quota_limit": 8.0, "quota_used": 1.0,
                     "quota_unit": "GPUs"}
    assert {o["quota_limit"] for o in offers if o["region"] == "europe-west4"} == {0.0}


# -- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gpu, field, words", [
    ({"type": "nvidia-x1"}, "node_pools[1].gpu.type", "unknown GPU type"),
    ({"type": "nvidia-a10g"}, "node_pools[1].gpu.type", "not offered on gcp"),
    ({"type": "nvidia-l4", "count": 3}, "node_pools[1].gpu.count", "1, 2, 4, 8"),
])
def test_bad_gpu_names_the_field_before_any_call(gpu, field, words):
    provider = gcp.GcpProvider({"project": "p", "access_token": "t", "api_endpoint": "http://127.0.0.1:9"}, REGION)
    with pytest.raises(SpecError) as err:
        provider.validate(dev_spec(gpu=gpu))
    assert err.value.field == field and words in str(err.value)


def test_min_over_max_is_rejected_by_the_spec():
    with pytest.raises(SpecError) as err:
        dev_spec(min_count=3, max_count=2)
    assert err.value.field == "node_pools[1].min_count"


def test_missing_region_and_project_name_the_option():
    spec = dev_spec()
    spec.region = None
    with pytest.raises(SpecError) as err:
        gcp.GcpProvider({"project": "p"}).validate(spec)
    assert err.value.field == "region"
    with pytest.raises(SpecError) as err:
        gcp.GcpProvider({"access_token": "t"}, REGION).validate(dev_spec())
    assert err.value.field == "provider_options.project"
    with pytest.raises(SpecError) as err:
        gcp.GcpProvider({"access_token": "t"}, REGION).get_cluster("x")
    assert err.value.field == "provider_options.project"


def test_kubernetes_version_must_be_a_minor_release():
    spec = dev_spec()
    spec.kubernetes_version = "1.30.5-gke.1014001"
    with pytest.raises(SpecError) as err:
        gcp.GcpProvider({"project": "p", "access_token": "t"}, REGION).validate(spec)
    assert err.value.field == "kubernetes_version"


def test_missing_credentials_name_options_env_and_awx(monkeypatch, tmp_path):
    from google.auth.compute_engine import _metadata
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud application-default login here
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)  # do not probe the metadata server
    provider = gcp.GcpProvider({"project": "p"}, REGION)
    with pytest.raises(SpecError) as err:
        provider.get_cluster("x")
    text = str(err.value)
    assert err.value.field == "provider_options"
    for words in ("service_account_file", "access_token", "GOOGLE_APPLICATION_CREDENTIALS", "AWX", "Google Compute Engine"):
        assert words in text


def test_unreadable_service_account_file_names_the_option(tmp_path):
    provider = gcp.GcpProvider({"project": "p", "service_account_file": str(tmp_path / "missing.json")}, REGION)
    with pytest.raises(SpecError) as err:
        provider.get_cluster("x")
    assert err.value.field == "provider_options.service_account_file"


def test_gpu_not_offered_in_region(request):
    provider, dummy = start_scenario(request, "gpu_not_offered", region="us-west1")
    spec = dev_spec(zones=[])
    spec.region = "us-west1"
    spec.node_pools[0].zones = []
    with pytest.raises(SpecError) as err:
        provider.validate(spec)
    assert err.value.field == "node_pools[1].gpu.type"
    assert "not offered in us-west1" in str(err.value) and "europe-west4, us-central1" in str(err.value)


def test_zone_without_the_gpu(request):
    provider, dummy = start_scenario(request, "zone_not_offering")
    with pytest.raises(SpecError) as err:
        provider.validate(dev_spec(zones=["us-central1-f"]))
    assert err.value.field == "node_pools[1].zones[0]"
    assert "us-central1-a, us-central1-b" in str(err.value)


def test_zone_outside_the_region():
    provider = gcp.GcpProvider({"project": "p", "access_token": "t"}, REGION)
    with pytest.raises(SpecError) as err:
        provider.validate(dev_spec(zones=["europe-west4-a"]))
    assert err.value.field == "node_pools[1].zones[0]"


# -- errors ----------------------------------------------------------------------------------------------
def test_permission_denied_has_code_and_role_hint(request):
    provider, dummy = start_scenario(request, "permission_denied")
    with pytest.raises(ProviderError) as err:
        provider.get_cluster("llmops-dev")
    assert err.value.code == "PERMISSION_DENIED"
    assert "roles/container.admin" in err.value.hint and "container.clusters.get" in err.value.message


def test_disabled_api_says_how_to_enable_it(request):
    provider, dummy = start_scenario(request, "api_disabled")
    with pytest.raises(ProviderError) as err:
        provider.get_cluster("llmops-dev")
    assert err.value.code == "SERVICE_DISABLED" and "gcloud services enable" in err.value.hint


def test_operation_wait_times_out_naming_the_operation(request):
    provider, dummy = start_scenario(request, "operation_timeout")
    provider.delete_node_pool("llmops-dev", "gpu")
    with pytest.raises(WaitTimeout) as err:
        provider.wait_for_cluster("llmops-dev", "absent", timeout=0)
    assert "operation-5001" in str(err.value) and "DELETE_NODE_POOL RUNNING" in str(err.value)


def test_unreachable_endpoint_is_a_provider_error():
    provider = gcp.GcpProvider({"project": "p", "access_token": "t", "api_endpoint": "http://127.0.0.1:9",
                                "retry_attempts": 2, "retry_base_delay": 0}, REGION)
    with pytest.raises(ProviderError) as err:
        provider.get_cluster("x")
    assert err.value.code == "connection" and "api_endpoint" in err.value.hint


def test_without_google_auth_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(gcp_auth, "HAS_GOOGLE_AUTH", False)
    with pytest.raises(ProviderError) as err:
        gcp.GcpProvider({"project": "p", "access_token": "t"}, REGION).get_cluster("x")
    assert "pip install google-auth requests" in str(err.value)


def test_interface_declarations():
    assert gcp.GcpProvider.name == "gcp"
    assert set(gcp.GcpProvider.updatable_pool_fields) == {"count", "min_count", "max_count", "labels", "taints",
                                                          "node_config"}
    # Above GKE's cluster creation times and its 35-minute wait before it reports GCE_STOCKOUT.
    assert gcp.GcpProvider.default_wait_timeout >= 35 * 60 + 600
    assert set(gcp.GcpProvider.updatable_pool_fields) <= set(gcp.GcpProvider.reported_pool_fields)
    assert gcp.GcpProvider.updatable_cluster_fields == frozenset(["kubernetes_version", "cloud_nat"])


# -- issue 13: quota 403, honest waits, foundations, node_config, autoscaling -----------------------------
NODE_CONFIG = {
    "user_data": "#cloud-config\n",
    "sysctls": {"kernel.kptr_restrict": "2", "kernel.yama.ptrace_scope": "1", "net.ipv4.conf.all.rp_filter": "1"},
    "kubelet": {"readOnlyPort": 0, "podPidsLimit": 4096, "cpuManagerPolicy": "none", "protectKernelDefaults": True},
    "secure_boot": True,
}
FOUNDATION_OPTIONS = {"network": "llmops-dev", "subnetwork": "llmops-dev-nodes", "pods_range_name": "pods",
                      "services_range_name": "services", "private_nodes": True, "nat_router": "llmops-dev-router",
                      "master_authorized_networks": ["203.0.113.0/24"]}


def system_only_spec(node_config=None):
    return parse_cluster_spec({
        "name": "llmops-dev", "region": REGION, "kubernetes_version": "1.30", "tags": {"env": "dev"},
        "node_pools": [{"name": "system", "count": 1, "min_count": 0, "max_count": 3, "zones": ["us-central1-b"],
                        "instance_types": ["e2-standard-4"], "node_config": node_config or {}}]})


def test_gke_regional_quota_403_falls_back_to_the_next_machine_type(request):
    provider, dummy = start_scenario(request, "quota_403_fallback")
    spec = dev_spec(zones=["us-central1-a", "us-central1-b"], min_count=None, max_count=None, taints=[])
    provider.create_node_pool(spec, spec.pool("gpu"))
    # The 403 created nothing (no delete), and us-central1-b shares the region's quota (not tried).
    assert provider.events == [
        "node_pool/gpu: g2-standard-4 had no capacity in us-central1-a (QUOTA_EXCEEDED for the region; the other "
        "zones of us-central1 share that quota); trying g2-standard-8 in us-central1-a",
        "node_pool/gpu: using g2-standard-8 in us-central1-a",
    ]
    # The attempt trace: us-central1-b was skipped, not sent, after the region's quota answer.
    assert [(a["instance_type"], a["zones"], a["outcome"], a["code"]) for a in provider.attempts] == [
        ("g2-standard-4", ["us-central1-a"], "no_capacity", "QUOTA_EXCEEDED"),
        ("g2-standard-4", ["us-central1-b"], "skipped", "QUOTA_EXCEEDED"),
        ("g2-standard-8", ["us-central1-a"], "created", None)]


def test_gke_quota_403_everywhere_is_a_quota_error_not_iam(request):
    provider, dummy = start_scenario(request, "quota_403_exhausted")
    spec = dev_spec(zones=["us-central1-a", "us-central1-b"], instance_types=["g2-standard-4"])
    with pytest.raises(ProviderError) as err:
        provider.create_node_pool(spec, spec.pool("gpu"))
    assert err.value.code == "QUOTA_EXCEEDED" and "PERMISSION" not in str(err.value)
    assert "roles/container.admin" not in (err.value.hint or "")
    assert provider.events[-1].endswith("no candidates left")


def test_quota_403_outside_a_fallback_gets_the_quota_hint():
    error = gcp_api.GcpApiError(403, "PERMISSION_DENIED", "Insufficient regional quota to satisfy request: resource "
                                                          "\"NVIDIA_L4_GPUS\": request requires '1.0' and is short '1.0'.")
    assert gcp_api._capacity_code(error.message) == "QUOTA_EXCEEDED" and gcp_api._regional_quota(error.message)
    assert gcp_api._capacity_code("Required 'container.clusters.get' permission") is None


def test_pool_still_provisioning_is_reported_as_creating_not_capacity(request):
    provider, server = start_scenario(request, "pool_still_provisioning")
    provider.operation_timeout = 0
    spec = dev_spec(zones=["us-central1-a"], instance_types=["g2-standard-4"])
    with pytest.raises(WaitTimeout) as err:
        provider.create_node_pool(spec, spec.pool("gpu"))
    assert err.value.code == "PROVISIONING" and "still creating" in str(err.value)
    assert provider.events == []  # no fallback was tried: GKE has not answered yet
    fresh = gcp.GcpProvider(provider_options(server), REGION)
    with pytest.raises(WaitTimeout) as err:
        fresh.wait_for_cluster("llmops-dev", "present", timeout=0)
    assert "node pool gpu still creating (PROVISIONING)" in str(err.value)
    assert gcp_api._capacity_code(err.value.message) is None and gcp_api._capacity_code(err.value.code) is None


def test_foundations_private_nodes_workload_identity_nat_and_node_config(request):
    provider, dummy = start_scenario(request, "foundations_private", **FOUNDATION_OPTIONS)
    spec = system_only_spec(NODE_CONFIG)
    provider.validate(spec)
    skipped = [e for e in provider.events if "not applied on GKE" in e]
    for key in ("user_data", "sysctls.net.ipv4.conf.all.rp_filter", "kubelet.protectKernelDefaults"):
        assert any("node_config.%s " % key in e for e in skipped), key
    assert len(skipped) == 3
    provider.create_cluster(spec)
    provider.wait_operation("operation-4001")
    assert "cluster/llmops-dev: added Cloud NAT llmops-dev-nat to router llmops-dev-router (egress for private nodes)" \
        in provider.events
    provider.delete_cluster("llmops-dev")
    assert provider.events[-1] == "cluster/llmops-dev: removed Cloud NAT llmops-dev-nat from router llmops-dev-router"


NODES_SUBNET = "projects/llmops-test/regions/us-central1/subnetworks/llmops-dev-nodes (ALL_IP_RANGES)"


def test_cloud_nat_missing_on_an_existing_cluster_is_planned_then_added(request):
    """The cluster predates nat_router (or its NAT was deleted by hand): every run checks the NAT, not only
    create_cluster. Planning (all check mode does) only reads; apply adds it; read back, nothing differs."""
    provider, server = start_scenario(request, "nat_missing_on_existing_cluster", **FOUNDATION_OPTIONS)
    spec = system_only_spec()
    plan = plan_present(spec, provider.get_cluster(spec.name), provider)
    want = {"sourceSubnetworkIpRangesToNat": "LIST_OF_SUBNETWORKS", "subnetworks": [NODES_SUBNET]}
    assert plan.describe() == ["update_cluster cluster/llmops-dev (cloud_nat: None -> %r)" % want]
    assert [m for m, dummy, dummy2, dummy3 in server.seen] == ["GET", "GET"], "planning must not change anything"
    apply_plan(plan, spec, provider)
    assert provider.events == ["cluster/llmops-dev: added Cloud NAT llmops-dev-nat to router llmops-dev-router "
                               "(egress for private nodes)"]
    patched = [body for method, dummy, dummy2, body in server.seen if method == "PATCH"]
    assert len(patched) == 1 and [n["name"] for n in patched[0]["nats"]] == ["shared-nat", "llmops-dev-nat"]
    again = plan_present(spec, provider.get_cluster(spec.name), provider)
    assert not again.changed, again.describe()


def test_cloud_nat_drift_is_set_back_and_hand_tuned_settings_kept(request):
    provider, server = start_scenario(request, "nat_drifted", **FOUNDATION_OPTIONS)
    spec = system_only_spec()
    plan = plan_present(spec, provider.get_cluster(spec.name), provider)
    [action] = plan.actions
    have, want = action.changes["cloud_nat"]
    assert have["subnetworks"] == [
        "projects/llmops-test/regions/us-central1/subnetworks/batch (ALL_IP_RANGES)",
        "projects/llmops-test/regions/us-central1/subnetworks/llmops-dev-nodes (PRIMARY_IP_RANGE)"]
    assert want["subnetworks"] == [NODES_SUBNET]
    apply_plan(plan, spec, provider)
    [body] = [body for method, dummy, dummy2, body in server.seen if method == "PATCH"]
    ours = body["nats"][0]
    assert ours["natIpAllocateOption"] == "MANUAL_ONLY" and ours["natIps"] and ours["minPortsPerVm"] == 128
    assert body["nats"][1]["name"] == "shared-nat"
    assert "set back to" in provider.events[-1]
    assert schema_check.discovery_request_problems(
        schema_check.load_discovery("compute.v1"), "PATCH",
        "/compute/v1/projects/llmops-test/regions/us-central1/routers/llmops-dev-router", body) == []


def test_nat_router_that_does_not_exist_names_the_option(request):
    provider, server = start_scenario(request, "nat_router_missing", **FOUNDATION_OPTIONS)
    spec = system_only_spec()
    state = provider.get_cluster(spec.name)
    with pytest.raises(SpecError) as err:
        plan_present(spec, state, provider)
    assert err.value.field == "provider_options.nat_router" and "foundations.yml" in str(err.value)


def test_node_config_drift_is_updated_in_place(request):
    provider, dummy = start_scenario(request, "node_config_update")
    spec = system_only_spec(NODE_CONFIG)
    provider.validate(spec)
    plan = plan_present(spec, provider.get_cluster(spec.name), provider)
    assert [a.verb for a in plan.actions] == ["update_node_pool"] and list(plan.actions[0].changes) == ["node_config"]
    have, want = plan.actions[0].changes["node_config"]
    assert have["kubelet"]["readOnlyPort"] == 10255 and have["kubelet"]["podPidsLimit"] == 1024
    assert have["sysctls"]["kernel.kptr_restrict"] == "1" and plan.not_updatable == []
    apply_plan(plan, spec, provider)
    again = plan_present(spec, provider.get_cluster(spec.name), provider)
    assert not again.changed, again.describe()


def test_secure_boot_cannot_change_in_place():
    provider = gcp.GcpProvider({"project": "p", "access_token": "t", "api_endpoint": "http://127.0.0.1:9"}, REGION)
    spec = system_only_spec({"secure_boot": True})
    with pytest.raises(ProviderError) as err:
        provider.update_node_pool(spec, spec.pool("system"), {"node_config": ({"secure_boot": False}, {"secure_boot": True})})
    assert "node_config.secure_boot" in str(err.value) and err.value.code == "NOT_UPDATABLE"


def test_bounded_pool_is_autoscaled_and_its_count_left_to_the_autoscaler():
    provider = gcp.GcpProvider({"project": "p", "access_token": "t"}, REGION)
    spec = dev_spec(count=1, min_count=1, max_count=4)
    body = provider._pool_body(spec, spec.pool("gpu"), "g2-standard-4", "us-central1-b")
    assert body["autoscaling"] == {"enabled": True, "minNodeCount": 1, "maxNodeCount": 4}
    assert body["initialNodeCount"] == 1
    unbounded = provider._pool_body(spec, spec.pool("system"), "e2-standard-4", "us-central1-b")
    assert "autoscaling" not in unbounded
    # The autoscaler grew the pool to 3: inside 1..4, so not drift; 5 would be outside.
    from ansible_collections.llmops.platform.plugins.module_utils.providers.base import NodePoolState
    from ansible_collections.llmops.platform.plugins.module_utils.reconcile import _differences
    state = NodePoolState(name="gpu", status="running", count=3, min_count=1, max_count=4)
    assert "count" not in _differences(spec.pool("gpu"), state, provider.reported_pool_fields)
    state.count = 5
    assert _differences(spec.pool("gpu"), state, provider.reported_pool_fields)["count"] == (5, 1)


def test_private_nodes_without_nat_and_half_named_ranges():
    provider = gcp.GcpProvider({"project": "p", "access_token": "t", "private_nodes": True}, REGION)
    provider.validate(system_only_spec())
    assert any("nat_router" in e for e in provider.events)
    provider = gcp.GcpProvider({"project": "p", "access_token": "t", "pods_range_name": "pods"}, REGION)
    with pytest.raises(SpecError) as err:
        provider.validate(system_only_spec())
    assert err.value.field == "provider_options.services_range_name"
