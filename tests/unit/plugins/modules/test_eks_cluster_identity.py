"""eks_cluster_identity against moto in server mode (real boto3 over HTTP on loopback).

moto 5.2.5 has no EKS access entry API (its EKS URL map ends at node groups, Fargate profiles and tags),
so tests/unit/aws_backend.py answers CreateAccessEntry, ListAccessEntries, DescribeAccessEntry,
DeleteAccessEntry, AssociateAccessPolicy, ListAssociatedAccessPolicies and DisassociateAccessPolicy in
front of it, in the EKS API reference's shapes, after checking each request against botocore's model.
The cluster itself, its OIDC issuer and the IAM OIDC provider are moto's.
"""
import pytest

from ansible_collections.llmops.platform.plugins.modules import eks_cluster_identity

CLUSTER = "llmops-prune"
ACCOUNT = "arn:aws:iam::123456789012:"
PLATFORM = ACCOUNT + "role/platform-admins"
ML_TEAM = ACCOUNT + "role/ml-team"
NODE_ROLE = ACCOUNT + "role/llmops-eks-node"
BY_HAND = ACCOUNT + "role/break-glass"
OTHER_CLUSTERS = ACCOUNT + "role/other-cluster-admins"
POLICY = "arn:aws:eks::aws:cluster-access-policy/"
ADMIN, EDIT, VIEW = POLICY + "AmazonEKSClusterAdminPolicy", POLICY + "AmazonEKSEditPolicy", POLICY + "AmazonEKSViewPolicy"
OUR_TAGS = {"llmops.io/managed-by": "llmops.platform", "llmops.io/foundation": CLUSTER}


@pytest.fixture
def cluster(aws_backend):
    """An EKS cluster (moto) with three access entries we did not create: EKS's entry for the node role,
    one added by hand with a policy, and one tagged by us for another cluster."""
    eks = aws_backend.client("eks")
    eks.create_cluster(name=CLUSTER, roleArn=ACCOUNT + "role/llmops-eks-cluster",
                       resourcesVpcConfig={"subnetIds": sorted(aws_backend.subnets)[:2]})
    eks.create_access_entry(clusterName=CLUSTER, principalArn=NODE_ROLE, type="EC2_LINUX")
    eks.create_access_entry(clusterName=CLUSTER, principalArn=BY_HAND, type="STANDARD", tags={"owner": "sre"})
    eks.associate_access_policy(clusterName=CLUSTER, principalArn=BY_HAND, policyArn=ADMIN, accessScope={"type": "cluster"})
    eks.create_access_entry(clusterName=CLUSTER, principalArn=OTHER_CLUSTERS, type="STANDARD",
                            tags=dict(OUR_TAGS, **{"llmops.io/foundation": "llmops-other"}))
    yield eks
    eks.delete_cluster(name=CLUSTER)
    for provider in aws_backend.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        aws_backend.client("iam").delete_open_id_connect_provider(OpenIDConnectProviderArn=provider["Arn"])


def policies(backend):
    """principal -> {policy: scope}, as the (proxied) EKS API holds them now."""
    return dict((p, dict(e["policies"])) for p, e in backend.proxy.access_entries[CLUSTER].items())


def test_present_prunes_only_our_entries_and_policies(aws_backend, run_module, cluster):
    def identity(admins, check_mode=False):
        return run_module(eks_cluster_identity.main, {
            "name": CLUSTER, "region": "us-east-1", "provider_options": aws_backend.provider_options(),
            "admin_principals": admins}, check_mode=check_mode)

    untouched = dict((p, v) for p, v in policies(aws_backend).items())
    first = identity([{"principal_arn": PLATFORM}, {"principal_arn": ML_TEAM, "policy_arn": EDIT, "namespaces": ["serving"]}])
    assert first["changed"] and first["access_entries"] == sorted([PLATFORM, ML_TEAM])
    assert first["pruned"] == {"access_entries": [], "access_policies": []}
    assert policies(aws_backend)[ML_TEAM] == {EDIT: {"type": "namespace", "namespaces": ["serving"]}}
    assert aws_backend.proxy.access_entries[CLUSTER][PLATFORM]["entry"]["tags"] == OUR_TAGS
    again = identity([{"principal_arn": PLATFORM}, {"principal_arn": ML_TEAM, "policy_arn": EDIT, "namespaces": ["serving"]}])
    assert not again["changed"], again["actions"]

    # platform-admins is delisted; ml-team moves from edit in one namespace to view on the whole cluster.
    delisted = [{"principal_arn": ML_TEAM, "policy_arn": VIEW}]
    before, since = policies(aws_backend), len(aws_backend.proxy.requests)
    plan = identity(delisted, check_mode=True)
    assert plan["changed"] and sorted(plan["actions"]) == sorted([
        "associate_access_policy %s %s" % (ML_TEAM, VIEW), "disassociate_access_policy %s %s" % (ML_TEAM, EDIT),
        "delete_access_entry %s" % PLATFORM])
    assert plan["pruned"] == {"access_entries": [PLATFORM],
                              "access_policies": [{"principal_arn": ML_TEAM, "policy_arn": EDIT}]}
    assert policies(aws_backend) == before and aws_backend.proxy.mutations(since) == [], "check mode changed something"

    applied = identity(delisted)
    assert applied["actions"] == plan["actions"] and applied["pruned"] == plan["pruned"]
    now = policies(aws_backend)
    assert PLATFORM not in now and now[ML_TEAM] == {VIEW: {"type": "cluster"}}
    assert not identity(delisted)["changed"]

    # Only the scope changes: the association is replaced in place, nothing is pruned.
    narrowed = [{"principal_arn": ML_TEAM, "policy_arn": VIEW, "namespaces": ["serving", "monitoring"]}]
    scoped = identity(narrowed)
    assert scoped["actions"] == ["associate_access_policy %s %s" % (ML_TEAM, VIEW)]
    assert scoped["pruned"] == {"access_entries": [], "access_policies": []}
    assert policies(aws_backend)[ML_TEAM] == {VIEW: {"type": "namespace", "namespaces": ["serving", "monitoring"]}}

    # An empty list prunes every entry of ours; the three we did not create survive with their policies.
    emptied = identity([])
    assert emptied["actions"] == ["delete_access_entry %s" % ML_TEAM]
    assert emptied["pruned"]["access_entries"] == [ML_TEAM]
    assert policies(aws_backend) == untouched
    assert not identity([])["changed"]
    assert aws_backend.proxy.invalid == [], "a request the real EKS API would refuse"


def test_an_entry_we_did_not_create_keeps_its_other_policies(aws_backend, run_module, cluster):
    """break-glass was made by hand with the admin policy. Listing it adds view; delisting it or changing
    its policy never disassociates anything or deletes the entry: its policies may predate us."""
    def identity(admins):
        return run_module(eks_cluster_identity.main, {
            "name": CLUSTER, "region": "us-east-1", "provider_options": aws_backend.provider_options(),
            "admin_principals": admins})

    listed = identity([{"principal_arn": BY_HAND, "policy_arn": VIEW}])
    assert listed["actions"][-1] == "associate_access_policy %s %s" % (BY_HAND, VIEW)
    assert identity([{"principal_arn": BY_HAND, "policy_arn": EDIT}])["pruned"] == {"access_entries": [], "access_policies": []}
    delisted = identity([])
    assert not delisted["changed"] and delisted["pruned"] == {"access_entries": [], "access_policies": []}
    assert set(policies(aws_backend)[BY_HAND]) == {ADMIN, VIEW, EDIT}
    assert aws_backend.proxy.access_entries[CLUSTER][BY_HAND]["entry"]["tags"] == {"owner": "sre"}


def test_the_same_principal_and_policy_twice_names_the_item(aws_backend, run_module, cluster):
    iam = aws_backend.client("iam")
    providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    result = run_module(eks_cluster_identity.main, {
        "name": CLUSTER, "region": "us-east-1", "provider_options": aws_backend.provider_options(),
        "admin_principals": [{"principal_arn": ML_TEAM, "policy_arn": VIEW},
                             {"principal_arn": ML_TEAM, "policy_arn": EDIT, "namespaces": ["a"]},
                             {"principal_arn": ML_TEAM, "policy_arn": VIEW, "namespaces": ["b"]}]})
    assert result.failed and result["msg"].startswith("admin_principals[2]"), result["msg"]
    assert "once per policy_arn" in result["msg"]
    assert ML_TEAM not in aws_backend.proxy.access_entries.get(CLUSTER, {}), "nothing is done on bad input"
    assert iam.list_open_id_connect_providers()["OpenIDConnectProviderList"] == providers
