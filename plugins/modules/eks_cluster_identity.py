#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: eks_cluster_identity
short_description: IAM OIDC provider and EKS access entries for an EKS cluster
version_added: 0.1.0
description:
  - Makes sure the IAM OpenID Connect provider for the cluster's issuer exists (what IRSA, IAM roles for
    service accounts, needs), and that each principal in O(admin_principals) has an EKS access entry with
    its access policy associated.
  - Why a module of our own; amazon.aws (10.x) has no module for IAM OIDC providers or EKS access
    entries, and community.aws's EKS modules do not manage them. Both belong to one cluster (the issuer
    URL and the access entries exist only once the cluster does), so they are one module, run after the
    cluster is created, on the same client, retry and error handling as M(llmops.platform.gpu_cluster).
  - Everything it creates is tagged C(llmops.io/managed-by=llmops.platform) and C(llmops.io/foundation=<name>).
    With O(state=absent) it removes only what carries those tags; an OIDC provider or access entry made
    by anyone else is left alone.
  - With O(state=present) it also prunes, so the list is the whole truth for what it manages. An access
    entry carrying both tags whose principal is no longer in O(admin_principals) is deleted (also when the
    list is empty), and on such an entry every associated access policy that is not listed for that
    principal is disassociated (a changed O(admin_principals[].policy_arn)); a changed scope is replaced
    in place. RV(pruned) lists both.
  - Entries without those tags are never deleted and keep their other policies (EKS's own entries for node
    roles, the cluster creator's entry, entries added by hand). If a listed principal already had such an
    entry, the module only associates the listed policy on it; delisting that principal later leaves the
    entry and that association in place (remove them by hand).
  - When the cluster does not exist yet it changes nothing and returns RV(cluster_found=false), so a
    foundations play can run before the first provision.
author:
  - llmops.platform maintainers (@llmops)
options:
  name:
    description: Name of the EKS cluster.
    type: str
    required: true
  region:
    description: AWS region of the cluster.
    type: str
    required: true
  provider_options:
    description:
      - The aws provider's settings, as for M(llmops.platform.gpu_cluster); used here are the credentials
        (C(access_key)/C(secret_key)/C(session_token) or C(profile), masked in all output), C(endpoint_url)
        and the retry settings. Other keys are ignored.
    type: dict
    default: {}
  admin_principals:
    description:
      - IAM principals (users or roles) that get an access entry with an access policy.
      - List a principal once per access policy it should have (for example a view policy on the cluster
        and an edit policy in one namespace); the same principal and policy twice is an error.
      - Entries of ours (tagged) whose principal is not listed are deleted with O(state=present); entries
        we did not create are never touched.
    type: list
    elements: dict
    default: []
    suboptions:
      principal_arn:
        description: ARN of the IAM role or user.
        type: str
        required: true
      policy_arn:
        description: EKS access policy to associate.
        type: str
        default: arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy
      namespaces:
        description: Limit the policy to these namespaces; empty means the whole cluster.
        type: list
        elements: str
        default: []
  tags:
    description: Extra tags for what is created (the two ownership tags are always added).
    type: dict
    default: {}
  state:
    description: V(present) creates what is missing; V(absent) deletes what this module created.
    type: str
    choices: [present, absent]
    default: present
notes:
  - The cluster's authentication mode must be V(API) or V(API_AND_CONFIG_MAP) for access entries;
    M(llmops.platform.gpu_cluster) creates EKS clusters with V(API_AND_CONFIG_MAP).
  - IAM permissions needed are listed in docs/clouds.md.
attributes:
  check_mode:
    support: full
    description: Reads the current state and returns the actions it would take.
  diff_mode:
    support: none
    description: RV(actions) says what changes.
"""

EXAMPLES = r"""
- name: OIDC provider and admin access for the dev cluster
  llmops.platform.eks_cluster_identity:
    name: llmops-dev
    region: us-east-1
    admin_principals:
      - principal_arn: arn:aws:iam::123456789012:role/platform-admins
      - principal_arn: arn:aws:iam::123456789012:role/ml-team
        policy_arn: arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy
        namespaces: [serving]
  register: identity

- name: Remove what the module created
  llmops.platform.eks_cluster_identity:
    name: llmops-dev
    region: us-east-1
    state: absent
"""

RETURN = r"""
cluster_found:
  description: Whether the cluster exists (nothing is done when it does not).
  returned: always
  type: bool
actions:
  description: What was done (or, in check mode, would be done).
  returned: always
  type: list
  elements: str
  sample: ["create_oidc_provider oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
           "delete_access_entry arn:aws:iam::123456789012:role/former-admins"]
oidc_provider_arn:
  description: ARN of the IAM OIDC provider for the cluster's issuer; null when the cluster does not exist.
  returned: state is present
  type: str
issuer:
  description: The cluster's OIDC issuer URL.
  returned: state is present
  type: str
access_entries:
  description: Principals that have an access entry as asked.
  returned: state is present
  type: list
  elements: str
pruned:
  description:
    - What O(state=present) removed (or, in check mode, would remove) because it is no longer listed;
      only access entries and policy associations carrying our tags are ever pruned.
  returned: state is present
  type: dict
  contains:
    access_entries:
      description: Principals whose access entry (ours, no longer listed) was deleted.
      type: list
      elements: str
      sample: ["arn:aws:iam::123456789012:role/former-admins"]
    access_policies:
      description: Policies disassociated from our entry of a listed principal.
      type: list
      elements: dict
      sample: [{"principal_arn": "arn:aws:iam::123456789012:role/ml-team",
                "policy_arn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy"}]
"""

from ansible_collections.llmops.platform.plugins.module_utils.eks_identity import CLUSTER_ADMIN_POLICY, EksIdentity
from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.providers.aws import AwsProvider

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    region=dict(type="str", required=True),
    provider_options=dict(type="dict", default={}),
    admin_principals=dict(type="list", elements="dict", default=[], options=dict(
        principal_arn=dict(type="str", required=True),
        policy_arn=dict(type="str", default=CLUSTER_ADMIN_POLICY),
        namespaces=dict(type="list", elements="str", default=[]),
    )),
    tags=dict(type="dict", default={}),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def run(module):
    params = module.params
    provider = AwsProvider(params["provider_options"], params["region"])
    identity = EksIdentity(provider, params["name"], check_mode=module.check_mode, tags=params["tags"])
    if params["state"] == "present":
        result = identity.present(params["admin_principals"])
    else:
        result = identity.absent()
    result["changed"] = bool(result["actions"])
    return result


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
