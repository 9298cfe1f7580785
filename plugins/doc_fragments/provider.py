# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by every module that talks to a cloud (or the local lab) through a provider.
    DOCUMENTATION = r"""
options:
  provider:
    description:
      - Which implementation of the cluster provider interface to use.
      - C(aws) builds an EKS cluster with one managed node group per node pool.
      - C(azure) builds an AKS cluster with agent pools through the Azure SDK.
      - C(gcp) builds a GKE cluster with node pools through the GKE v1 REST API.
      - C(local) runs the cluster on this host as a podman network with one systemd container per node.
    type: str
    required: true
    choices: [aws, azure, gcp, local]
  provider_options:
    description:
      - Provider-specific settings.
      - Credentials given here (any key that ends in C(secret), C(token), C(password), C(private_key) or
        C(api_key), or starts with C(secret), such as C(secret_key), C(session_token), C(access_token),
        C(client_secret)) are masked like C(no_log) options, in the result, its invocation, error messages
        and the journal. Prefer the environment or an AWX credential all the same.
      - "For C(local): C(podman_executable) (default V(podman)), C(network) (default V(<name>-net)),
        C(subnet) (CIDR for the lab network), C(memory) (memory limit per node container, e.g. V(2g))."
      - "For C(aws): C(cluster_role_arn), C(node_role_arn) and C(subnet_ids) (required to create);
        C(security_group_ids), C(node_subnet_ids), C(ami_type), C(gpu_ami_type) (default V(AL2023_x86_64_NVIDIA));
        credentials C(access_key)/C(secret_key)/C(session_token) or C(profile), else the usual AWS
        environment variables and files (an AWX Amazon Web Services credential sets them);
        C(endpoint_url) for an alternative endpoint; C(poll_interval) seconds between status checks (default 15)."
      - "For C(gcp): C(project) (required); credentials C(service_account_file) or C(access_token), else
        application default credentials; C(gpu_driver_version), C(default_machine_type), C(bootstrap_machine_type),
        C(node_service_account), C(network), C(subnetwork), C(pods_range_name) and C(services_range_name) (the
        subnet's secondary ranges, VPC-native), C(private_nodes) (nodes without external addresses),
        C(nat_router) (a Cloud Router that gets the Cloud NAT C(<name>-nat), removed with the cluster),
        C(master_authorized_networks) (CIDRs allowed to reach the control plane), C(workload_identity) (default
        V(true): workload pool C(<project>.svc.id.goog), pools in C(GKE_METADATA) mode), C(api_endpoint),
        C(compute_endpoint), C(poll_interval), C(request_timeout), C(retry_attempts), C(retry_base_delay).
        See docs/clouds.md."
      - "For C(azure): C(subscription_id) and C(resource_group) (required); credentials C(client_id)/C(client_secret)/C(tenant_id),
        else DefaultAzureCredential (environment, managed identity, CLI); C(node_resource_group), C(system_pool),
        C(default_vm_size), C(sku_tier), C(dns_prefix), C(network_plugin), C(spot_eviction_policy), C(spot_max_price),
        C(check_sku_availability), C(polling_interval), C(retry_attempts), C(retry_base_delay), C(base_url),
        C(connection_verify). See docs/clouds.md."
    type: dict
    default: {}
  region:
    description:
      - Cloud region. Required by the cloud providers; ignored by C(local).
    type: str
"""

    # The cluster a module works on (gpu_cluster, gpu_cluster_info).
    CLUSTER_NAME = r"""
options:
  name:
    description:
      - Name of the cluster. 1-40 lower-case letters, digits and dashes, starting with a letter.
      - Node names are derived from it.
    type: str
    required: true
"""
