"""GCP request bodies against the real GKE and Compute APIs: the discovery documents that ship with
google-api-python-client (container.v1, compute.v1), walked by tests/unit/schema_check.py.

gcp_fixture_server.py runs the same check on every request any GCP test sends; this file proves the
walker can fail (mutations), checks every recorded request, and checks the lists the provider keeps
(sysctls GKE accepts, NodeKubeletConfig fields) against the documents.
"""
import json
import pathlib
import re

import pytest

import schema_check
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.providers import gcp, gcp_translate

FIXTURES = pathlib.Path(__file__).resolve().parent / "plugins" / "module_utils" / "providers" / "fixtures" / "gcp"
CONTAINER = schema_check.load_discovery("container.v1")
COMPUTE = schema_check.load_discovery("compute.v1")

NODE_CONFIG = {"sysctls": {"kernel.kptr_restrict": "2", "vm.max_map_count": "262144"},
               "kubelet": {"readOnlyPort": 0, "podPidsLimit": 4096, "cpuManagerPolicy": "static",
                           "containerLogMaxFiles": 5, "imageGCHighThresholdPercent": 85, "allowedUnsafeSysctls": ["net.*"]},
               "secure_boot": True}
OPTIONS = {"project": "p", "access_token": "t", "network": "n", "subnetwork": "s", "pods_range_name": "pods",
           "services_range_name": "svc", "private_nodes": True, "master_authorized_networks": ["10.0.0.0/8"]}


def spec():
    return parse_cluster_spec({"name": "c", "region": "us-central1", "tags": {"env": "dev"}, "node_pools": [
        {"name": "gpu", "count": 1, "min_count": 0, "max_count": 2, "gpu": {"type": "nvidia-l4"}, "capacity_type": "spot",
         "disk_size_gb": 200, "image": "COS_CONTAINERD", "labels": {"role": "gpu"},
         "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}], "node_config": NODE_CONFIG}]})


def pool_body():
    provider = gcp.GcpProvider(dict(OPTIONS, node_service_account="nodes@p.iam.gserviceaccount.com"), "us-central1")
    s = spec()
    return provider._pool_body(s, s.pool("gpu"), "g2-standard-4", "us-central1-a")


def test_node_pool_body_with_node_config_fits_create_node_pool_request():
    body = {"nodePool": pool_body()}
    assert body["nodePool"]["config"]["kubeletConfig"]["insecureKubeletReadonlyPortEnabled"] is False
    assert body["nodePool"]["config"]["kubeletConfig"]["podPidsLimit"] == "4096"  # int64 travels as a string
    assert schema_check.discovery_body_problems(CONTAINER, "CreateNodePoolRequest", body) == []


@pytest.mark.parametrize("mutate, words", [
    (lambda b: b["nodePool"]["config"].update(workloadMetadataConfg=b["nodePool"]["config"].pop("workloadMetadataConfig")),
     "workloadMetadataConfg: not a field of NodeConfig"),
    (lambda b: b["nodePool"]["config"]["kubeletConfig"].update(podPidsLimitt="1"), "podPidsLimitt: not a field"),
    (lambda b: b["nodePool"]["config"]["kubeletConfig"].update(podPidsLimit=4096), "expected string (int64)"),
    (lambda b: b["nodePool"]["autoscaling"].update(maxNodeCount="2"), "maxNodeCount: expected integer"),
    (lambda b: b["nodePool"]["config"]["taints"][0].update(effect="NoSchedule"), "is not one of"),
    (lambda b: b["nodePool"]["config"]["linuxNodeConfig"]["sysctls"].update({"kernel.sysrq": 0}), "expected string"),
    (lambda b: b["nodePool"]["config"]["shieldedInstanceConfig"].update(enableSecureBoot="true"), "expected boolean"),
])
def test_a_misspelled_or_mistyped_field_fails(mutate, words):
    """Mutation proof: each change below is the kind of mistake a typo makes; the walker must reject it."""
    body = {"nodePool": pool_body()}
    mutate(body)
    problems = schema_check.discovery_body_problems(CONTAINER, "CreateNodePoolRequest", body)
    assert len(problems) == 1 and words in problems[0], problems


def test_cluster_body_fits_create_cluster_request():
    provider = gcp.GcpProvider(OPTIONS, "us-central1")
    cluster = dict(provider._cluster_network(), name="c", workloadIdentityConfig={"workloadPool": "p.svc.id.goog"},
                   nodePools=[pool_body()])
    assert schema_check.discovery_body_problems(CONTAINER, "CreateClusterRequest", {"cluster": cluster}) == []
    cluster["privateClusterConfig"] = {"enablePrivateNodes": True, "masterIpv4CidrBlok": "172.16.0.0/28"}
    assert schema_check.discovery_body_problems(CONTAINER, "CreateClusterRequest", {"cluster": cluster}) == [
        "body.cluster.privateClusterConfig.masterIpv4CidrBlok: not a field of PrivateClusterConfig (known: "
        "enablePrivateEndpoint, enablePrivateNodes, masterGlobalAccessConfig, masterIpv4CidrBlock, peeringName, "
        "privateEndpoint, privateEndpointSubnetwork, publicEndpoint)"]


def test_cloud_nat_body_fits_router_patch():
    provider = gcp.GcpProvider(OPTIONS, "us-central1")
    body = {"nats": [provider._nat_body("c")]}
    assert schema_check.discovery_request_problems(
        COMPUTE, "PATCH", "/compute/v1/projects/p/regions/us-central1/routers/r", body) == []
    body["nats"][0]["sourceSubnetworkIpRangesToNat"] = "LIST_OF_SUBNETS"
    assert "is not one of" in schema_check.discovery_request_problems(
        COMPUTE, "PATCH", "/compute/v1/projects/p/regions/us-central1/routers/r", body)[0]


def test_cloud_nat_set_back_on_an_existing_router_fits_router_patch():
    """The drift fix sends the NAT as Compute answered it (full URLs, hand-tuned settings) with our subnetworks."""
    provider = gcp.GcpProvider(OPTIONS, "us-central1")
    read = json.loads((FIXTURES / "nat_drifted.json").read_text())["exchanges"][1]["response"]["json"]["nats"]
    body = {"nats": [gcp_translate._with_sources(read[0], provider._nat_body("c")), read[1]]}
    assert body["nats"][0]["natIps"] and body["nats"][0]["subnetworks"] == provider._nat_body("c")["subnetworks"]
    path = "/compute/v1/projects/p/regions/us-central1/routers/r"
    assert schema_check.discovery_request_problems(COMPUTE, "PATCH", path, body) == []
    body["nats"][0]["subnetworks"][0]["sourceIpRangesToNat"] = "ALL_IP_RANGES"  # a string where a list belongs
    assert "expected array" in " ".join(schema_check.discovery_request_problems(COMPUTE, "PATCH", path, body))


def test_unknown_paths_and_bodies_for_bodyless_methods_fail():
    assert "no method" in schema_check.discovery_request_problems(CONTAINER, "POST", "/v1/projects/p/clusterz", {})[0]
    assert "takes no request body" in schema_check.discovery_request_problems(
        CONTAINER, "DELETE", "/v1/projects/p/locations/l/clusters/c", {"x": 1})[0]


def test_every_recorded_request_fits_the_discovery_documents():
    seen = 0
    for path in sorted(FIXTURES.glob("*.json")):
        for exchange in json.loads(path.read_text())["exchanges"]:
            want = exchange["request"]
            document = COMPUTE if want["path"].startswith("/compute/") else CONTAINER
            method = schema_check.discovery_method(document, want["method"], want["path"])
            assert method is not None, "%s: %s %s" % (path.name, want["method"], want["path"])
            # The fixture names the method it follows; the document agrees.
            assert method[0].endswith(exchange["api"].split(" ")[1]), (path.name, method[0], exchange["api"])
            if "body" in want:
                assert schema_check.discovery_request_problems(document, want["method"], want["path"], want["body"]) == []
            seen += 1
    assert seen > 60


def test_sysctl_allowlist_is_the_one_gke_documents():
    description = CONTAINER["schemas"]["LinuxNodeConfig"]["properties"]["sysctls"]["description"]
    documented = set(re.findall(r"\b(?:net|kernel|fs|vm)\.[a-z0-9_.\-]+[a-z0-9_]", description))
    assert gcp_translate.GKE_SYSCTLS == documented


def test_kubelet_mapping_targets_real_node_kubelet_config_fields():
    fields = CONTAINER["schemas"]["NodeKubeletConfig"]["properties"]
    for ours, (theirs, dummy, dummy2) in gcp_translate.KUBELET_TO_GKE.items():
        assert theirs in fields, (ours, theirs)


def test_fixture_server_checks_every_request_against_the_documents(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURES.parent))
    from gcp_fixture_server import FixtureServer
    server = FixtureServer([])
    server.seen.append(("POST", "/v1/projects/p/locations/l/clusters/c/nodePools",
                        {}, {"nodePool": {"name": "x", "confg": {}}}))
    try:
        assert server.schema_problems() == [
            "container.projects.locations.clusters.nodePools.create body.nodePool.confg: not a field of NodePool "
            "(known: %s)" % ", ".join(sorted(CONTAINER["schemas"]["NodePool"]["properties"]))]
    finally:
        server._httpd.server_close()
