# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an EKS cluster needs for identity once it exists: the IAM OIDC provider for its issuer (IRSA)
and EKS access entries, each with access policy associations, for named admin principals.

No module of amazon.aws covers these (amazon.aws 10 has no OIDC provider or EKS access entry module),
so they live here, on the aws provider's client and error handling. Everything created is tagged
llmops.io/managed-by=llmops.platform and llmops.io/foundation=<cluster>; removal touches only what
carries those tags, never an OIDC provider or access entry that was there before.

`present` also prunes: an access entry of ours whose principal is no longer listed is deleted, and on
our entries a policy association other than the listed one is disassociated. An entry without our tags
(EKS's own node-role entries, the cluster creator's entry, entries added by hand) is never changed
beyond the association asked for: what else is associated on it may predate us, so it stays.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.aws import AwsProvider

MANAGED_BY = ("llmops.io/managed-by", "llmops.platform")
STS_AUDIENCE = "sts.amazonaws.com"
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def our_tags(cluster, extra=None):
    tags = dict(extra or {})
    tags.update({MANAGED_BY[0]: MANAGED_BY[1], "llmops.io/foundation": cluster})
    return tags


def is_ours(tags, cluster):
    """Whether `tags` (a dict) mark a resource this collection created for `cluster`."""
    return tags.get(MANAGED_BY[0]) == MANAGED_BY[1] and tags.get("llmops.io/foundation") == cluster


def desired_access(admins):
    """admin_principals -> {principal: {policy_arn: access scope}}. A principal may be listed once per
    policy (e.g. view on the cluster and edit in one namespace); the same pair twice is ambiguous."""
    wanted = {}
    for i, admin in enumerate(admins):
        principal = admin["principal_arn"]
        policy = admin.get("policy_arn") or CLUSTER_ADMIN_POLICY
        if policy in wanted.get(principal, {}):
            raise SpecError("admin_principals[%d]" % i, "lists %s with %s a second time" % (principal, policy),
                            hint="list each principal once per policy_arn; put all its namespaces in one item")
        namespaces = admin.get("namespaces")
        wanted.setdefault(principal, {})[policy] = (
            {"type": "namespace", "namespaces": list(namespaces)} if namespaces else {"type": "cluster"})
    return wanted


def _same_scope(have, want):
    return have.get("type") == want["type"] and sorted(have.get("namespaces") or []) == sorted(want.get("namespaces") or [])


class EksIdentity(object):
    """Reconciles the OIDC provider and access entries of one cluster. check_mode plans only."""

    def __init__(self, provider, cluster, check_mode=False, tags=None):
        if not isinstance(provider, AwsProvider):  # pragma: no cover - the module builds an AwsProvider
            raise TypeError("EksIdentity needs the aws provider")
        self.provider = provider
        self.cluster = cluster
        self.check_mode = check_mode
        self.tags = our_tags(cluster, tags)
        self.actions = []

    def _act(self, text, operation):
        self.actions.append(text)
        if not self.check_mode:
            operation()

    # -- reading -------------------------------------------------------------------------------------
    def describe_cluster(self):
        try:
            return self.provider.call("eks", "describe_cluster", name=self.cluster)["cluster"]
        except ProviderError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise

    def find_oidc_provider(self, issuer):
        """ARN of the IAM OIDC provider for `issuer` (whoever made it), and its tags; (None, {}) if none."""
        host = issuer.split("://", 1)[-1].rstrip("/")
        for item in self.provider.call("iam", "list_open_id_connect_providers").get("OpenIDConnectProviderList", []):
            arn = item["Arn"]
            if arn.endswith(":oidc-provider/" + host):
                tags = self.provider.call("iam", "list_open_id_connect_provider_tags", OpenIDConnectProviderArn=arn)
                return arn, dict((t["Key"], t["Value"]) for t in tags.get("Tags", []))
        return None, {}

    def access_entries(self):
        entries, token = [], None
        while True:
            kwargs = {"clusterName": self.cluster}
            if token:
                kwargs["nextToken"] = token
            page = self.provider.call("eks", "list_access_entries", **kwargs)
            entries.extend(page.get("accessEntries", []))
            token = page.get("nextToken")
            if not token:
                return entries

    def describe_entry(self, principal):
        return self.provider.call("eks", "describe_access_entry", clusterName=self.cluster,
                                  principalArn=principal)["accessEntry"]

    def associated_policies(self, principal):
        found = self.provider.call("eks", "list_associated_access_policies", clusterName=self.cluster,
                                   principalArn=principal).get("associatedAccessPolicies", [])
        return dict((p["policyArn"], p.get("accessScope") or {}) for p in found)

    # -- present -------------------------------------------------------------------------------------
    def present(self, admins):
        """admins: list of {principal_arn, policy_arn, namespaces}. Returns the result dict."""
        wanted = desired_access(admins)  # bad input fails before anything is read or changed
        cluster = self.describe_cluster()
        if cluster is None:
            return {"cluster_found": False, "actions": [], "oidc_provider_arn": None, "issuer": None,
                    "access_entries": [], "pruned": {"access_entries": [], "access_policies": []}}
        issuer = ((cluster.get("identity") or {}).get("oidc") or {}).get("issuer")
        if not issuer:
            raise ProviderError("EKS cluster %s reports no OIDC issuer yet (status %s)" % (self.cluster, cluster.get("status")),
                                code="NoIssuer", hint="wait for the cluster to become ACTIVE and run again")
        arn, _tags = self.find_oidc_provider(issuer)
        if arn is None:
            host = issuer.split("://", 1)[-1].rstrip("/")
            account = cluster.get("arn", "arn:aws:eks:r:000000000000:").split(":")[4]
            arn = "arn:aws:iam::%s:oidc-provider/%s" % (account, host)
            # No thumbprint: IAM secures EKS issuers with its own trusted CA library and the field is
            # optional (IAM API reference, CreateOpenIDConnectProvider).
            self._act("create_oidc_provider %s" % host, lambda: self.provider.call(
                "iam", "create_open_id_connect_provider", Url=issuer, ClientIDList=[STS_AUDIENCE],
                Tags=[{"Key": k, "Value": v} for k, v in sorted(self.tags.items())]))
        mode = (cluster.get("accessConfig") or {}).get("authenticationMode")
        if admins and mode == "CONFIG_MAP":
            raise SpecError("admin_principals", "the cluster's authenticationMode is CONFIG_MAP, which has no access entries",
                            hint="create the cluster with provider_options.authentication_mode API_AND_CONFIG_MAP, or "
                                 "switch it with UpdateClusterConfig (one way: it cannot go back)")
        pruned = {"access_entries": [], "access_policies": []}
        # A CONFIG_MAP cluster has no access entries (the API refuses to list them), so none of ours to prune.
        existing = set(self.access_entries()) if mode != "CONFIG_MAP" else set()
        for principal in sorted(wanted):
            self._ensure_access(principal, wanted[principal], principal in existing, pruned)
        for principal in sorted(existing - set(wanted)):
            if is_ours(self.describe_entry(principal).get("tags") or {}, self.cluster):
                self._act("delete_access_entry %s" % principal, lambda p=principal: self.provider.call(
                    "eks", "delete_access_entry", clusterName=self.cluster, principalArn=p))
                pruned["access_entries"].append(principal)
        return {"cluster_found": True, "actions": self.actions, "oidc_provider_arn": arn, "issuer": issuer,
                "access_entries": sorted(wanted), "pruned": pruned}

    def _ensure_access(self, principal, policies, exists, pruned):
        """One principal: its entry, each wanted policy with its scope, and (on our entry only) no other policy."""
        have, ours = {}, False
        if not exists:
            self._act("create_access_entry %s" % principal, lambda: self.provider.call(
                "eks", "create_access_entry", clusterName=self.cluster, principalArn=principal, type="STANDARD",
                tags=dict(self.tags)))
        else:
            have = self.associated_policies(principal)
            ours = is_ours(self.describe_entry(principal).get("tags") or {}, self.cluster)
        for policy, scope in sorted(policies.items()):
            # AssociateAccessPolicy on an associated policy replaces its scope (EKS API reference).
            if policy not in have or not _same_scope(have[policy], scope):
                self._act("associate_access_policy %s %s" % (principal, policy), lambda p=policy, s=scope: self.provider.call(
                    "eks", "associate_access_policy", clusterName=self.cluster, principalArn=principal, policyArn=p,
                    accessScope=s))
        for policy in sorted(set(have) - set(policies)) if ours else []:
            self._act("disassociate_access_policy %s %s" % (principal, policy), lambda p=policy: self.provider.call(
                "eks", "disassociate_access_policy", clusterName=self.cluster, principalArn=principal, policyArn=p))
            pruned["access_policies"].append({"principal_arn": principal, "policy_arn": policy})

    # -- absent --------------------------------------------------------------------------------------
    def absent(self):
        """Remove our access entries (if the cluster is still there) and our OIDC provider."""
        cluster = self.describe_cluster()
        issuer = ((cluster or {}).get("identity") or {}).get("oidc", {}).get("issuer")
        if cluster is not None:
            for principal in self.access_entries():
                if is_ours(self.describe_entry(principal).get("tags") or {}, self.cluster):
                    self._act("delete_access_entry %s" % principal, lambda p=principal: self.provider.call(
                        "eks", "delete_access_entry", clusterName=self.cluster, principalArn=p))
        for arn, tags in self._our_oidc_providers(issuer):
            self._act("delete_oidc_provider %s" % arn, lambda a=arn: self.provider.call(
                "iam", "delete_open_id_connect_provider", OpenIDConnectProviderArn=a))
        return {"cluster_found": cluster is not None, "actions": self.actions}

    def _our_oidc_providers(self, issuer):
        """OIDC providers tagged for this cluster (the cluster may be gone, so its issuer is not needed)."""
        found = []
        for item in self.provider.call("iam", "list_open_id_connect_providers").get("OpenIDConnectProviderList", []):
            tags = dict((t["Key"], t["Value"]) for t in self.provider.call(
                "iam", "list_open_id_connect_provider_tags", OpenIDConnectProviderArn=item["Arn"]).get("Tags", []))
            if is_ours(tags, self.cluster):
                found.append((item["Arn"], tags))
        return found
