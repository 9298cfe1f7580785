#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_cluster
short_description: Create, scale or delete a Kubernetes cluster with GPU node pools on any supported provider
version_added: 0.1.0
description:
  - Describes a cluster and its node pools once, cloud-neutrally, and makes the chosen provider match it.
  - Creates what is missing, scales node pools in place, and reports (in RV(not_updatable) and as a
    warning) differences that the provider cannot apply without replacing a pool, instead of silently
    ignoring them.
  - With O(state=absent) deletes the node pools first, then the cluster.
  - Why this module exists; the cloud collections manage a cluster or a node group one API object at a
    time, with a different shape per cloud. This module keeps one inventory shape for every cloud and
    the local lab, and computes one plan that check mode, diff mode and the real run all share.
author:
  - llmops.platform maintainers (@llmops)
extends_documentation_fragment:
  - llmops.platform.provider
  - llmops.platform.provider.cluster_name
attributes:
  check_mode:
    support: full
    description: Returns the plan (RV(actions)) without calling any API that changes something.
  diff_mode:
    support: full
    description: Shows the cluster summary before and after.
options:
  state:
    description:
      - V(present) creates or updates the cluster; V(absent) deletes it with all its node pools.
    type: str
    choices: [present, absent]
    default: present
  kubernetes_version:
    description: Kubernetes version of the control plane, where the provider runs one.
    type: str
  node_pools:
    description:
      - Node pools of the cluster. Pools that exist but are not listed are kept unless
        O(purge_node_pools=true).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Pool name, unique in the cluster (same rules as the cluster name).
        type: str
        required: true
      count:
        description: Number of nodes (desired size). 0 or more.
        type: int
        default: 1
      min_count:
        description: Lower autoscaling bound, where the provider autoscales.
        type: int
      max_count:
        description: Upper autoscaling bound, where the provider autoscales.
        type: int
      instance_types:
        description:
          - Instance types / machine types / VM sizes to try, in order of preference. When the first has no
            capacity, the next is tried, and RV(events) says which one the pool got.
          - Leave it out to let the GPU catalog choose from O(node_pools[].gpu).
        type: list
        elements: str
      zones:
        description: Zones to place the pool in, in order of preference (capacity fallback walks them too).
        type: list
        elements: str
      gpu:
        description: GPUs per node, by cloud-neutral name. The C(local) provider records it as node labels only.
        type: dict
        suboptions:
          type:
            description: GPU name, for example V(nvidia-l4) or V(nvidia-h100-80gb).
            type: str
            required: true
          count:
            description: GPUs per node.
            type: int
            default: 1
      labels:
        description: Kubernetes node labels.
        type: dict
      taints:
        description: Kubernetes node taints.
        type: list
        elements: dict
        suboptions:
          key:
            description: Taint key.
            type: str
            required: true
          value:
            description: Taint value.
            type: str
          effect:
            description: Taint effect.
            type: str
            choices: [NoSchedule, PreferNoSchedule, NoExecute]
            default: NoSchedule
      capacity_type:
        description: V(on_demand) or V(spot) capacity.
        type: str
        choices: [on_demand, spot]
        default: on_demand
      disk_size_gb:
        description: Root disk size of each node.
        type: int
      image:
        description:
          - Node image. Required by the C(local) provider, where it must be an image in local podman storage
            (for example V(localhost/llmops/debian-systemd:bookworm), built by C(scripts/build-lab-images.sh)).
        type: str
      node_config:
        description:
          - Boot-time configuration of the pool's nodes, so a node the cloud or its autoscaler adds is
            hardened and GPU-ready without anyone reaching it. Rendered from the C(node_hardening) and
            C(nvidia_gpu) variables by the C(llmops.platform.node_boot_config) role; docs/hardening.md
            says what each cloud takes.
          - A change is drift, so providers replace or roll the pool's nodes (or its launch template) as the
            cloud does for a new node template.
        type: dict
        suboptions:
          user_data:
            description:
              - The whole boot document for node OSes that run it at first boot. C(local) writes it into
                each node's cloud-init NoCloud seed (a C(#cloud-config) document); C(aws) puts it into the
                node group's launch template (AL2023 MIME multi-part with a nodeadm C(NodeConfig)).
            type: str
          sysctls:
            description:
              - Kernel parameters (name to value) for clouds that set them through their node
                configuration (GKE C(linuxNodeConfig.sysctls), AKS C(linuxOSConfig.sysctls)). A key the
                cloud cannot set is reported in RV(events), never silently dropped.
            type: dict
          kubelet:
            description:
              - Kubelet settings by their upstream C(KubeletConfiguration) field names (camelCase), for
                example C(readOnlyPort), C(podPidsLimit), C(protectKernelDefaults).
            type: dict
          secure_boot:
            description: Secure boot and integrity monitoring (shielded / trusted launch) where the cloud has it.
            type: bool
      fallback:
        description:
          - What the pool may fall back to when its first choice has no capacity while it is created
            (docs/clouds.md, capacity fallback). Without it the walk is the pool's own instance types and zones.
          - With it, the instance types of each GPU type are tried in the order of the capacity plan
            (M(llmops.platform.gpu_capacity_info)) where the cloud's price source answers, else in catalog order.
          - Scale-ups of an existing pool do not fall back (the pool keeps its placement).
        type: dict
        suboptions:
          capacity_types:
            description:
              - Capacity types to try, in order; the first must be O(node_pools[].capacity_type). For example
                V([spot, on_demand]) lets a spot pool be created on demand when spot has no capacity.
            type: list
            elements: str
            choices: [on_demand, spot]
          gpu_types:
            description:
              - Other acceptable GPU types (same O(node_pools[].gpu.count) per node), tried after the pool's own
                GPU type, with the catalog's shapes for them.
            type: list
            elements: str
          attempt_timeout:
            description:
              - Seconds one placement may stay pending (a stockout the cloud has not reported yet) before it is
                abandoned, its half-created pool deleted, and the next placement tried. The whole walk stays
                bounded by O(wait_timeout); pending at that deadline fails as a timeout and deletes nothing.
            type: int
          regions:
            description:
              - Not supported, and refused with an error that says why; a node pool lives in its cluster's
                region. Choose the region when the cluster is created (M(llmops.platform.gpu_capacity_info)
                ranks regions), or run one cluster per region.
            type: list
            elements: str
      reservation:
        description:
          - Capacity held for the pool (docs/clouds.md, reservations and capacity blocks). The provider reads it
            and checks it against the pool (instance or machine type, zone, free count) before any request is sent.
          - Needs O(node_pools[].capacity_type=on_demand) and cannot be combined with O(node_pools[].fallback).
        type: dict
        suboptions:
          type:
            description:
              - V(reservation) is an AWS On-Demand Capacity Reservation, a GCP specific reservation or an Azure
                capacity reservation group; V(capacity_block) an AWS Capacity Block for ML; V(flex_start) GCP
                flex-start (Dynamic Workload Scheduler), which names nothing.
            type: str
            default: reservation
            choices: [reservation, capacity_block, flex_start]
          name:
            description:
              - The reservation as the cloud names it; AWS a C(cr-...) id (or, for V(reservation), a resource group
                ARN), GCP the reservation name, Azure the capacity reservation group's resource ID.
            type: str
  purge_node_pools:
    description: Delete node pools that exist in the cluster but are not listed in O(node_pools).
    type: bool
    default: false
  tags:
    description: Tags / labels put on the cluster's cloud resources.
    type: dict
    default: {}
  kubeconfig:
    description:
      - Path of a kubeconfig file to write (mode 0600) for the cluster, for M(kubernetes.core.k8s) and
        friends. Written only when its content changes; ignored by providers without a Kubernetes API (C(local)).
    type: path
  wait:
    description: Wait until the cluster and every node are ready (or gone, with O(state=absent)).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait before failing with a message that says what was still pending.
      - Defaults to the provider's own bound, chosen above that cloud's documented creation times and the
        time it takes to report a GPU stockout (see docs/clouds.md); 300 for C(local).
    type: int
notes:
  - The C(local) provider needs podman. On hosts without systemd-delegated cgroups point C(CONTAINERS_CONF)
    at the collection's C(lab/containers.conf) (the repository's scripts do this).
  - "Runs on the controller: a play on C(localhost), or C(delegate_to: localhost)."
"""

EXAMPLES = r"""
- name: A local lab with two (simulated) GPU nodes and a monitoring node
  llmops.platform.gpu_cluster:
    provider: local
    name: llmops-lab
    node_pools:
      - name: gpu
        count: 2
        image: localhost/llmops/debian-systemd:bookworm
        gpu: {type: nvidia-l4, count: 1}
        labels: {llmops.io/role: gpu}
        taints: [{key: nvidia.com/gpu, value: "present", effect: NoSchedule}]
      - name: monitoring
        count: 1
        image: localhost/llmops/debian-systemd:bookworm
  register: lab

- name: Reach the nodes it returned
  ansible.builtin.add_host:
    name: "{{ item.name }}"
    groups: ["llmops_pool_{{ item.pool }}"]
    ansible_connection: "{{ item.connection.ansible_connection }}"
  loop: "{{ lab.nodes }}"

- name: Scale the GPU pool to zero and drop pools that are not listed
  llmops.platform.gpu_cluster:
    provider: local
    name: llmops-lab
    purge_node_pools: true
    node_pools:
      - {name: gpu, count: 0, image: localhost/llmops/debian-systemd:bookworm}

- name: Tear it down
  llmops.platform.gpu_cluster:
    provider: local
    name: llmops-lab
    state: absent

- name: AWS - EKS with an on-demand L4 pool that falls back through instance types and zones
  llmops.platform.gpu_cluster:
    provider: aws
    name: llmops-prod
    region: us-east-1
    kubernetes_version: "1.33"
    provider_options:
      cluster_role_arn: arn:aws:iam::123456789012:role/llmops-eks-cluster
      node_role_arn: arn:aws:iam::123456789012:role/llmops-eks-node
      subnet_ids: [subnet-0aaa, subnet-0bbb, subnet-0ccc]
    node_pools:
      - {name: system, count: 2, instance_types: [m7i.large]}
      - name: gpu
        count: 4
        min_count: 2
        max_count: 12
        gpu: {type: nvidia-l4, count: 1}
        instance_types: [g6.2xlarge, g6.4xlarge]
        zones: [us-east-1a, us-east-1b]
        taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
    kubeconfig: ~/.kube/llmops-prod.yaml
  register: cluster

- name: GCP - GKE with a spot L4 pool; credentials from the AWX "Google Compute Engine" credential
  llmops.platform.gpu_cluster:
    provider: gcp
    name: llmops-dev
    region: us-central1
    provider_options:
      project: acme-llm-dev
      service_account_file: "{{ lookup('ansible.builtin.env', 'GCP_SERVICE_ACCOUNT_FILE') }}"
    node_pools:
      - {name: system, count: 1, instance_types: [e2-standard-4]}
      - {name: gpu, count: 1, capacity_type: spot, gpu: {type: nvidia-l4, count: 1}, zones: [us-central1-a, us-central1-b]}

- name: Azure - AKS with a Spot T4 pool; service principal from the AWX "Microsoft Azure Resource Manager" credential
  llmops.platform.gpu_cluster:
    provider: azure
    name: llmops-staging
    region: eastus
    provider_options:
      subscription_id: "{{ lookup('ansible.builtin.env', 'AZURE_SUBSCRIPTION_ID') }}"
      resource_group: llmops-staging
    node_pools:
      - {name: system, count: 2, instance_types: [Standard_D4s_v5]}
      - {name: gpu, count: 1, min_count: 0, max_count: 3, capacity_type: spot, gpu: {type: nvidia-t4, count: 1}}
"""

RETURN = r"""
cluster:
  description: The cluster as the provider reports it after the run; empty when absent.
  returned: always
  type: dict
  sample:
    name: llmops-lab
    status: running
    region: local
    endpoint: 10.89.0.0/24
    node_pools:
      gpu: {name: gpu, status: running, count: 2, image: localhost/llmops/debian-systemd:bookworm}
nodes:
  description: Every node of the cluster with the host variables Ansible needs to reach it.
  returned: always
  type: list
  elements: dict
  sample:
    - name: llmops-lab-gpu-1
      pool: gpu
      status: running
      address: 10.89.0.2
      connection: {ansible_connection: containers.podman.podman, ansible_host: llmops-lab-gpu-1}
actions:
  description: The plan that was (or in check mode would be) carried out, in order.
  returned: always
  type: list
  elements: str
  sample: ["create_cluster cluster/llmops-lab", "create_node_pool node_pool/gpu"]
not_updatable:
  description: Differences the provider cannot apply in place; also emitted as warnings.
  returned: always
  type: list
  elements: str
events:
  description: Notable things that happened, such as a capacity fallback to the next instance type or zone.
  returned: always
  type: list
  elements: str
  sample: ["node_pool/gpu: g6.xlarge had no capacity in us-east-1a; using g6.2xlarge"]
attempts:
  description:
    - The attempt trace of the capacity fallback, one entry per placement considered while creating node pools,
      in order, with its C(capacity_type) and C(gpu_type). C(outcome) is V(created), V(no_capacity),
      V(timed_out) (pending past C(fallback.attempt_timeout), abandoned), V(skipped) (an earlier answer, such
      as a regional quota, ruled it out; nothing was sent) or V(failed) (an error that is not about capacity,
      which stops the run). Each attempt that did not create the pool is also a warning.
    - Returned on failure too. In check mode, for pools with O(node_pools[].fallback), what creating them would
      try, in order, with outcome V(planned).
  returned: always
  type: list
  elements: dict
  sample:
    - {pool: gpu, instance_type: g6.xlarge, zones: [us-east-1a], capacity_type: spot, gpu_type: nvidia-l4,
       outcome: no_capacity, code: InsufficientInstanceCapacity, error: "g6.xlarge spot had no capacity (...)", seconds: 1203.4}
    - {pool: gpu, instance_type: g6.xlarge, zones: [us-east-1a], capacity_type: on_demand, gpu_type: nvidia-l4,
       outcome: created, code: null, error: null, seconds: 312.9}
kubeconfig:
  description: Path of the kubeconfig written, when the provider has a Kubernetes API and O(kubeconfig) was set.
  returned: when written or unchanged
  type: str
"""

import json
import os
import stat
import tempfile


from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import parse_cluster_spec
from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.platform.plugins.module_utils.provider_args import (
    provider_argument_spec, provider_from_params)
from ansible_collections.llmops.platform.plugins.module_utils.reconcile import (
    apply_plan, plan_absent, plan_present)

# Types are checked by AnsibleModule; ranges and cross-field rules by cluster_spec, which names the field.
NODE_POOL_OPTIONS = dict(
    name=dict(type="str", required=True),
    count=dict(type="int", default=1),
    min_count=dict(type="int"),
    max_count=dict(type="int"),
    instance_types=dict(type="list", elements="str"),
    zones=dict(type="list", elements="str"),
    gpu=dict(type="dict", options=dict(type=dict(type="str", required=True), count=dict(type="int", default=1))),
    labels=dict(type="dict"),
    taints=dict(type="list", elements="dict", options=dict(
        key=dict(type="str", required=True, no_log=False),
        value=dict(type="str"),
        effect=dict(type="str", default="NoSchedule", choices=["NoSchedule", "PreferNoSchedule", "NoExecute"]),
    )),
    capacity_type=dict(type="str", default="on_demand", choices=["on_demand", "spot"]),
    disk_size_gb=dict(type="int"),
    image=dict(type="str"),
    node_config=dict(type="dict", options=dict(
        user_data=dict(type="str"),
        sysctls=dict(type="dict"),
        kubelet=dict(type="dict"),
        secure_boot=dict(type="bool"),
    )),
    fallback=dict(type="dict", options=dict(
        capacity_types=dict(type="list", elements="str", choices=["on_demand", "spot"]),
        gpu_types=dict(type="list", elements="str"),
        attempt_timeout=dict(type="int"),
        regions=dict(type="list", elements="str"),
    )),
    reservation=dict(type="dict", options=dict(
        type=dict(type="str", default="reservation", choices=["reservation", "capacity_block", "flex_start"]),
        name=dict(type="str"),
    )),
)

ARGUMENT_SPEC = provider_argument_spec(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    kubernetes_version=dict(type="str"),
    node_pools=dict(type="list", elements="dict", default=[], options=NODE_POOL_OPTIONS),
    purge_node_pools=dict(type="bool", default=False),
    tags=dict(type="dict", default={}),
    kubeconfig=dict(type="path"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int"),
)


def run(module):
    params = module.params
    spec = parse_cluster_spec(params)
    provider = provider_from_params(params)
    wait_timeout = params["wait_timeout"] or provider.default_wait_timeout
    provider.operation_timeout = wait_timeout
    if params["state"] == "present":
        provider.validate(spec)

    before = provider.get_cluster(spec.name)
    if params["state"] == "present":
        plan = plan_present(spec, before, provider, purge_node_pools=params["purge_node_pools"])
    else:
        plan = plan_absent(spec.name, before)

    for message in plan.not_updatable:
        module.warn(message)

    after = before
    if module.check_mode:
        for action in plan.actions:
            pool = spec.pool(action.target.split("/", 1)[1]) if action.verb == "create_node_pool" else None
            if pool is not None and pool.fallback is not None:
                # The plan of what creating the pool would try: reads only (offerings, prices).
                provider.attempts.extend(provider.planned_attempts(spec, pool))
    try:
        if plan.changed and not module.check_mode:
            apply_plan(plan, spec, provider)
        # Waiting on "present" even without changes catches nodes that are still booting from a previous run.
        if not module.check_mode and params["wait"] and (params["state"] == "present" or plan.changed):
            provider.wait_for_cluster(spec.name, params["state"], wait_timeout)
    except LlmopsError as exc:
        # The trace matters most when every attempt failed: return it with the failure.
        _warn_attempts(module, provider.attempts)
        module.fail_json(msg=str(exc), attempts=provider.attempts, events=provider.events)
    _warn_attempts(module, provider.attempts)
    if not module.check_mode:
        after = provider.get_cluster(spec.name)
    nodes = provider.list_nodes(spec.name) if after is not None else []

    result = dict(
        changed=plan.changed,
        actions=plan.describe(),
        not_updatable=plan.not_updatable,
        events=provider.events,
        attempts=provider.attempts,
        cluster=after.summary() if after else {},
        nodes=[n.as_dict() for n in nodes],
    )
    if params["kubeconfig"] and after is not None and not module.check_mode:
        config = provider.kubeconfig(spec.name)
        if config is not None:
            result["kubeconfig"] = params["kubeconfig"]
            result["changed"] |= write_private_file(module, params["kubeconfig"], config)
    if module._diff:
        result["diff"] = dict(
            before=before.summary() if before else {},
            after=_expected_after(spec, params["state"]) if module.check_mode else (after.summary() if after else {}),
        )
    return result


def _warn_attempts(module, attempts):
    """One short warning per capacity attempt that did not create its pool, so the play output shows the trace."""
    for a in attempts:
        if a["outcome"] in ("no_capacity", "timed_out", "skipped", "failed"):
            module.warn("node_pool/%s: %s %s in %s: %s after %.1fs (%s)" % (
                a["pool"], a.get("instance_type") or a.get("placement"), a["capacity_type"],
                ",".join(a.get("zones") or []) or "any zone", a["outcome"], a["seconds"], a["code"] or a["error"]))


def write_private_file(module, path, data):
    """Write YAML-compatible JSON to `path` with mode 0600, atomically; return whether it changed.

    Kubeconfigs carry credentials, so the content is never put in the result or the diff.
    """
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if os.path.exists(path):
        with open(path) as handle:
            if handle.read() == text and stat.S_IMODE(os.stat(path).st_mode) == 0o600:
                return False
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kubeconfig-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        module.atomic_move(tmp, path)
        os.chmod(path, 0o600)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _expected_after(spec, state):
    """What check mode expects the cluster to look like: the spec, as far as it was asked for."""
    if state == "absent":
        return {}
    return dict(name=spec.name, node_pools=dict((p.name, p.summary()) for p in spec.node_pools))


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
