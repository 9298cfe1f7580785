"""cluster_cost_info: what a cluster as built costs, end to end on AWS (real boto3 over HTTP to moto).

The cluster is made by gpu_cluster on moto; on-demand prices come from the test proxy's Price List
(GetProducts in the documented shape, every request checked against botocore: aws_price_list.py), spot
prices from moto's DescribeSpotPriceHistory. The rates are test data, not AWS's prices.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from aws_price_list import RATES
from azure_prices_server import RetailPricesServer, load_items
from recap import changed_per_host

from ansible_collections.llmops.platform.plugins.module_utils.cluster_cost import HOURS_PER_MONTH, estimate_cost
from ansible_collections.llmops.platform.plugins.module_utils.providers.azure import AzureProvider
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import ClusterState, NodePoolState
from ansible_collections.llmops.platform.plugins.module_utils.providers.local import LocalPodmanProvider
from ansible_collections.llmops.platform.plugins.modules import cluster_cost_info, gpu_cluster

NAME = "llmops-aws-cost"
POOLS = [{"name": "system", "count": 2, "instance_types": ["m7i.large"]},
         {"name": "gpu", "count": 3, "gpu": {"type": "nvidia-l4", "count": 1}},
         {"name": "burst", "count": 1, "gpu": {"type": "nvidia-t4", "count": 1}, "capacity_type": "spot"}]


def base_args(backend, **extra):
    args = {"provider": "aws", "name": NAME, "region": "us-east-1", "provider_options": backend.provider_options()}
    args.update(extra)
    return args


@pytest.fixture
def cluster(aws_backend, run_module, price_list, monkeypatch):
    monkeypatch.setitem(RATES, ("m7i.large", "us-east-1"), "0.1008000000")
    created = run_module(gpu_cluster.main, base_args(aws_backend, node_pools=POOLS, wait_timeout=60))
    assert created["changed"], created
    yield created["cluster"]
    run_module(gpu_cluster.main, base_args(aws_backend, state="absent"))


def test_every_pool_is_priced_from_the_clouds_sources_and_summed(aws_backend, run_module, price_list, cluster):
    before = len(aws_backend.proxy.requests)
    result = run_module(cluster_cost_info.main, base_args(aws_backend, budget_monthly=5000), check_mode=True)
    assert not result.failed, result
    assert result["changed"] is False and result["priced"] and result["complete"], result
    pools = dict((p["pool"], p) for p in result["pools"])
    assert pools["gpu"]["instance_types"] == ["g6.xlarge"]
    assert (pools["gpu"]["price_per_node_hour"], pools["gpu"]["cost_per_hour"]) == (0.8, 2.4)
    assert pools["gpu"]["price_source"].startswith("AWS Price List Query API GetProducts")
    assert (pools["system"]["cost_per_hour"], pools["system"]["capacity_type"]) == (0.2016, "on_demand")
    # Spot: moto's spot price history for the burst pool's type, the cheapest zone.
    history = aws_backend.client("ec2").describe_spot_price_history(
        InstanceTypes=pools["burst"]["instance_types"], ProductDescriptions=["Linux/UNIX"])["SpotPriceHistory"]
    assert history and pools["burst"]["capacity_type"] == "spot"
    assert pools["burst"]["cost_per_hour"] == min(float(r["SpotPrice"]) for r in history)
    assert pools["burst"]["price_source"].startswith("EC2 DescribeSpotPriceHistory")
    total = round(sum(p["cost_per_hour"] for p in result["pools"]), 6)
    assert result["cost_per_hour"] == total
    assert result["cost_per_month"] == round(total * HOURS_PER_MONTH, 2) and result["hours_per_month"] == 730
    assert (result["budget_monthly"], result["over_budget"]) == (5000.0, False)
    assert run_module(cluster_cost_info.main, base_args(aws_backend, budget_monthly="100"))["over_budget"] is True
    assert aws_backend.proxy.mutations(before) == [], "pricing a cluster changes nothing"


def test_unknown_price_stays_unknown_and_the_total_is_a_lower_bound(aws_backend, run_module, price_list, cluster,
                                                                    monkeypatch):
    monkeypatch.delitem(RATES, ("m7i.large", "us-east-1"))
    result = run_module(cluster_cost_info.main, base_args(aws_backend, budget_monthly=1e6))
    assert not result.failed, result
    system = [p for p in result["pools"] if p["pool"] == "system"][0]
    assert system["cost_per_hour"] is None and system["price_per_node_hour"] is None
    assert "no row for m7i.large" in system["price_unknown_reason"]
    assert result["complete"] is False and "lower bound" in result["note"]
    assert result["over_budget"] is None, "under budget cannot be known with a pool unpriced"
    assert any("m7i.large" in e and "price unknown" in e for e in result["events"])

    price_list.denied = True
    denied = run_module(cluster_cost_info.main, base_args(aws_backend))
    on_demand = [p for p in denied["pools"] if p["capacity_type"] == "on_demand"]
    assert all(p["cost_per_hour"] is None and "AccessDeniedException" in p["price_unknown_reason"] for p in on_demand)


@pytest.mark.parametrize("budget, words", [(0, "must be above 0"), (-5, "must be above 0"),
                                           ("lots", "must be a number"), ("nan", "must be above 0")])
def test_a_bad_budget_names_the_field_before_any_call(aws_backend, run_module, budget, words):
    before = len(aws_backend.proxy.requests)
    result = run_module(cluster_cost_info.main, base_args(aws_backend, budget_monthly=budget))
    assert result.failed and "budget_monthly" in result["msg"] and words in result["msg"], result
    assert len(aws_backend.proxy.requests) == before


def test_the_local_lab_costs_nothing_and_says_so():
    lab = ClusterState(name="llmops-lab", status="running", node_pools={
        "gpu": NodePoolState(name="gpu", status="running", count=2)})
    result = estimate_cost(LocalPodmanProvider(), lab, budget=100)
    assert result["priced"] is False and result["cost_per_hour"] is None and result["cost_per_month"] is None
    assert "no cloud bill" in result["note"] and result["pools"][0]["price_unknown_reason"] == result["note"]
    assert result["over_budget"] is None


def test_a_missing_cluster_costs_nothing(aws_backend, run_module, price_list):
    result = run_module(cluster_cost_info.main, base_args(aws_backend, name="llmops-aws-none"))
    assert not result.failed and result["priced"] is False and "does not exist" in result["note"]


# ----------------------------------------------------------------------------- the role, as provision.yml runs it
PLAYBOOK = """
- name: Estimate (provision.yml's first play)
  hosts: llmops_controller
  gather_facts: false
  tasks:
    - name: Estimate
      ansible.builtin.include_role:
        name: llmops.platform.cluster_cost
- name: Publish (provision.yml's last play, here on the same host)
  hosts: llmops_controller
  gather_facts: false
  tasks:
    - name: Publish
      ansible.builtin.include_role:
        name: llmops.platform.cluster_cost
        tasks_from: publish.yml
"""


@pytest.fixture
def role_run(aws_backend, tmp_path):
    root = pathlib.Path(__file__).resolve().parents[5]
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "hosts.yml").write_text(json.dumps({"llmops_controller": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    textfiles = tmp_path / "textfile"
    env = dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg"))
    cluster = {"provider": "aws", "name": NAME, "region": "us-east-1", "provider_options": aws_backend.provider_options()}

    def run(*args, **extra):
        variables = dict(llmops_cluster=cluster, cluster_cost_textfile_dir=str(textfiles), **extra)
        return subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", str(tmp_path / "hosts.yml"),
                               str(tmp_path / "play.yml"), "-e", json.dumps(variables)] + list(args),
                              env=env, capture_output=True, text=True, cwd=str(root), check=False)
    run.file = textfiles / "llmops_cluster_cost.prom"
    return run


def test_provision_prints_and_publishes_the_cost_idempotently(run_module, price_list, cluster, role_run):
    checked = role_run("--check", llmops_cost_budget_monthly=100)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    assert not role_run.file.exists(), "check mode writes nothing"
    assert "pool gpu: 3 x g6.xlarge (on_demand): 2.4000 USD/h, 1752.00 USD/month" in checked.stdout
    assert "budget 100.0 USD/month: OVER" in checked.stdout and "LLMOpsClusterCostOverBudget" in checked.stdout

    unbudgeted = role_run("--check")
    assert unbudgeted.returncode == 0, unbudgeted.stdout[-3000:]
    assert "total %s: 2.6" % NAME in unbudgeted.stdout and not re.search(r"budget [0-9.]+ USD/month", unbudgeted.stdout)

    first = role_run(llmops_cost_budget_monthly=100)
    assert first.returncode == 0, first.stdout[-3000:]
    assert changed_per_host(first.stdout)["localhost"] > 0
    text = role_run.file.read_text()
    assert 'llmops_cluster_cost_per_hour{cluster="%s",pool="gpu",capacity_type="on_demand"} 2.4' % NAME in text
    assert 'llmops_cluster_cost_budget_monthly{cluster="%s"} 100.0' % NAME in text
    assert 'llmops_cluster_cost_pool_priced{cluster="%s",pool="system",capacity_type="on_demand"} 1' % NAME in text
    # Prometheus' own exposition-format linter.
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert [p.name for p in role_run.file.parent.iterdir()] == [role_run.file.name], "no temporary file left"

    again = role_run(llmops_cost_budget_monthly=100)
    assert again.returncode == 0 and changed_per_host(again.stdout)["localhost"] == 0, again.stdout[-3000:]


@pytest.mark.parametrize("budget, words", [("lots", "unable to convert to float"), (0, "must be a number above 0"),
                                           (-1, "must be a number above 0")])
def test_the_role_refuses_a_bad_budget_naming_the_variable(role_run, budget, words):
    result = role_run(llmops_cost_budget_monthly=budget)
    assert result.returncode != 0
    assert "cluster_cost_budget_monthly" in result.stdout and words in result.stdout, result.stdout[-3000:]
    assert not role_run.file.exists()


@pytest.mark.usefixtures("clean_azure_env")
def test_an_aks_cluster_is_priced_from_the_retail_prices_api(server):
    """The Retail Prices API on loopback in the documented shape (azure_prices_server.py); the cluster state as
    the AKS provider reports it (it asks no ARM API for prices)."""
    prices = RetailPricesServer(load_items("eastus"))
    try:
        provider = AzureProvider(server.provider_options(retail_prices_url=prices.url))
        aks = ClusterState(name="llmops-aks", status="Succeeded", region="eastus", node_pools={
            "gpu": NodePoolState(name="gpu", status="Succeeded", count=2, instance_types=["Standard_NC4as_T4_v3"],
                                 capacity_type="on_demand"),
            "burst": NodePoolState(name="burst", status="Succeeded", count=1, instance_types=["Standard_NC8as_T4_v3"],
                                   capacity_type="spot"),
            "system": NodePoolState(name="system", status="Succeeded", count=3, instance_types=["Standard_D4s_v5"])})
        result = estimate_cost(provider, aks, budget=2000)
    finally:
        prices.close()
    assert prices.errors == [], prices.errors
    pools = dict((p["pool"], p) for p in result["pools"])
    assert (pools["gpu"]["cost_per_hour"], pools["burst"]["cost_per_hour"]) == (1.0, 0.08)
    assert pools["gpu"]["price_source"].startswith("Azure Retail Prices API (meter ")
    assert pools["system"]["cost_per_hour"] is None and "no row for Standard_D4s_v5" in pools["system"]["price_unknown_reason"]
    assert result["cost_per_hour"] == 1.08 and result["cost_per_month"] == round(1.08 * 730, 2)
    assert result["complete"] is False and result["over_budget"] is None


def test_the_local_lab_publishes_zero_and_no_unpriced_pools(tmp_path):
    """The publish entry point alone, fed the local estimate (the lab's podman cluster is not needed for it)."""
    root = pathlib.Path(__file__).resolve().parents[5]
    lab = ClusterState(name="llmops-lab", status="running", node_pools={
        "gpu": NodePoolState(name="gpu", status="running", count=2),
        "monitoring": NodePoolState(name="monitoring", status="running", count=1)})
    estimate = estimate_cost(LocalPodmanProvider(), lab)
    play = tmp_path / "publish.yml"
    play.write_text("- name: Publish" + PLAYBOOK.split("- name: Publish", 1)[1])
    (tmp_path / "hosts.yml").write_text(json.dumps({"llmops_controller": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    variables = {"llmops_cluster": {"provider": "local", "name": "llmops-lab"}, "cluster_cost_estimate": estimate,
                 "cluster_cost_textfile_dir": str(tmp_path / "textfile")}
    run = subprocess.run([sys.executable, "-m", "ansible.cli.playbook", "-i", str(tmp_path / "hosts.yml"), str(play),
                          "-e", json.dumps(variables)], env=dict(os.environ, ANSIBLE_CONFIG=str(root / "ansible.cfg")),
                         capture_output=True, text=True, cwd=str(root), check=False)
    assert run.returncode == 0, run.stdout[-3000:]
    text = (tmp_path / "textfile" / "llmops_cluster_cost.prom").read_text()
    assert 'llmops_cluster_cost_per_hour{cluster="llmops-lab",pool="gpu",capacity_type="on_demand"} 0' in text
    assert "llmops_cluster_cost_pool_priced{" not in text and "llmops_cluster_cost_budget_monthly{" not in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
