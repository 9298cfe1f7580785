# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS: an EKS cluster with one managed node group per node pool, through boto3.

- Throttling and transient errors are retried by botocore's "standard" retry mode (capped exponential
  backoff with jitter); "an update is already in progress" (ResourceInUseException) is retried by us.
- GPU pools take their instance types from the GPU catalog unless the inventory names them. Before a
  node group is created, types that are not offered in the pool's zones are skipped; a node group that
  fails to launch for lack of capacity is deleted and the next type is tried; one that fails on the vCPU
  quota (VcpuLimitExceeded) also rules out the family's other types. Both are recorded as events, so the
  user learns which type the pool got. The loop (capacity types, other GPU types, price order, attempt
  timeout) is ClusterProvider.create_pool_with_fallback.
- Waits use the EKS waiters, bounded by the module's wait_timeout (default: default_wait_timeout below).
  A node group that is still CREATING when the wait ends is reported as such (WaitTimeout), never as a
  capacity failure: only a CREATE_FAILED group with a capacity health issue triggers the fallback, or the
  pool's fallback.attempt_timeout, which abandons (deletes) a group still CREATING past it.
- Boot-time node configuration: a pool whose node_config has `user_data` gets an EC2 launch template
  named `<cluster>-<pool>` (tagged as ours) that holds it; the managed node group is created from that
  template. Changed user data becomes a new template version, rolled out with UpdateNodegroupVersion.
  The template is deleted with the pool. Other node_config keys (sysctls, kubelet, secure_boot) have
  no EKS API field: on AL2023 they travel inside the user data (nodeadm NodeConfig), which
  roles/node_boot_config renders; they are noted as events, not dropped silently.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    HAS_BOTO3 = True
except ImportError:  # pragma: no cover - exercised only where boto3 is missing
    HAS_BOTO3 = False

from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, Taint
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError, WaitTimeout
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import (
    CapacityMiss, CapacityOffer, ClusterProvider, ClusterState, Node, NodePoolState)
from ansible_collections.llmops.platform.plugins.module_utils.providers.pricing_aws import AwsPricingMixin
from ansible_collections.llmops.platform.plugins.module_utils.retry import call_with_retry

# EKS spells taint effects and capacity types its own way.
EFFECT_TO_EKS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
EFFECT_FROM_EKS = dict((v, k) for k, v in EFFECT_TO_EKS.items())
CAPACITY_TO_EKS = {"on_demand": "ON_DEMAND", "spot": "SPOT"}
CAPACITY_FROM_EKS = dict((v, k) for k, v in CAPACITY_TO_EKS.items())
# A Capacity Block's node group has its own EKS capacity type; NodePoolSpec.accepts takes it for such a pool.
CAPACITY_FROM_EKS["CAPACITY_BLOCK"] = "capacity_block"
# node_pools[].reservation.type -> the EC2 ReservationType a capacity reservation must have.
RESERVATION_TYPES = {"reservation": "default", "capacity_block": "capacity-block"}
# The only platform an EKS Linux node launches as: a reservation for another one is never drawn on.
LINUX_PLATFORM = "Linux/UNIX"

# Node group health issues and API errors that mean "no capacity for this type here", not "broken".
CAPACITY_MARKERS = ("InsufficientInstanceCapacity", "InsufficientCapacity", "Unsupported", "SpotMaxPriceTooLow")

# Launch failures that mean "the account's vCPU quota for this family is used up", not a stockout.
QUOTA_MARKERS = ("VcpuLimitExceeded", "MaxSpotInstanceCountExceeded")

# Service Quotas codes that bound GPU instances, in vCPUs (one quota per instance family letter).
QUOTA_CODES = {
    ("G", "on_demand"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("P", "on_demand"): ("L-417A185B", "Running On-Demand P instances"),
    ("G", "spot"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("P", "spot"): ("L-7212CCBC", "All P Spot Instance Requests"),
}

HINTS = {
    "AccessDeniedException": "the credentials need the eks:*, ec2:Describe* and iam:PassRole permissions listed in docs/clouds.md",
    "UnrecognizedClientException": "the AWS credentials are invalid; check AWS_ACCESS_KEY_ID/AWS_PROFILE or the AWX credential",
    "InvalidClientTokenId": "the AWS credentials are invalid; check AWS_ACCESS_KEY_ID/AWS_PROFILE or the AWX credential",
    "ResourceLimitExceededException": "an EKS limit was reached; delete unused clusters/node groups or ask for a limit increase",
    "UnsupportedAvailabilityZoneException": "EKS has no capacity in one of the subnets' zones; use subnets in other zones",
    "InvalidParameterException": "check the cluster settings named in the message",
}


# Tags on everything this provider creates besides the cluster and node groups (launch templates).
MANAGED_BY = {"llmops.io/managed-by": "llmops.platform"}
# node_config keys that EKS has no API field for: on AL2023 they are part of the user data.
NODE_CONFIG_IN_USER_DATA = ("sysctls", "kubelet", "secure_boot")


class AwsProvider(AwsPricingMixin, ClusterProvider):
    name = "aws"
    updatable_pool_fields = frozenset(["count", "min_count", "max_count", "labels", "taints", "node_config"])
    updatable_cluster_fields = frozenset(["kubernetes_version"])
    # Zones are expressed through subnets on AWS, so they are not read back.
    reported_pool_fields = ("count", "min_count", "max_count", "instance_types", "gpu", "labels", "taints",
                            "capacity_type", "disk_size_gb", "node_config")
    # 45 minutes. Each operation is waited on separately (the cluster, then each node group), and each
    # must fit: EKS documents cluster creation as "several minutes" and field reports put it at 10-15
    # (Amazon EKS User Guide, "Create an Amazon EKS cluster"); a managed node group's Auto Scaling group
    # keeps retrying a GPU type that has no capacity before EKS marks the group CREATE_FAILED with
    # AsgInstanceLaunchFailures, which takes about 20 minutes in practice (issue 13; EC2 Auto Scaling
    # User Guide, "Troubleshoot instance launch failure"). 45 min is above both, with room to spare;
    # docs/clouds.md repeats the figures and their sources.
    default_wait_timeout = 2700

    def __init__(self, options=None, region=None):
        super(AwsProvider, self).__init__(options, region)
        self.poll_interval = int(self.options.get("poll_interval", 15))
        self._clients = {}
        # Pool name -> the node_config the spec asks for, known once validate() has seen the spec.
        self._wanted_node_config = {}
        # Pool name -> its checked capacity reservation (_check_reservation), known once validate() has run.
        self._reserved = {}

    # -- clients and errors --------------------------------------------------------------------------
    def client(self, service, region=None):
        if not HAS_BOTO3:
            raise ProviderError("the aws provider needs boto3", hint="pip install boto3 (see requirements/controller.txt)")
        region = region or self.options.get("region")
        key = (service, region)
        if key not in self._clients:
            session = boto3.session.Session(
                profile_name=self.options.get("profile") or None,
                aws_access_key_id=self.options.get("access_key") or None,
                aws_secret_access_key=self.options.get("secret_key") or None,
                aws_session_token=self.options.get("session_token") or None,
                region_name=region,
            )
            config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 8},
                                            user_agent_extra="llmops.platform")
            self._clients[key] = session.client(service, endpoint_url=self.options.get("endpoint_url") or None,
                                                config=config)
        return self._clients[key]

    def call(self, service, operation, **kwargs):
        """One API call: retries an in-progress update, maps every failure to ProviderError."""
        method = getattr(self.client(service, kwargs.pop("_region", None)), operation)

        def in_progress(exc):
            return _code(exc) == "ResourceInUseException" and "progress" in str(exc).lower()

        try:
            return call_with_retry(lambda: method(**kwargs), in_progress, attempts=int(self.options.get("busy_attempts", 8)),
                                   base=float(self.options.get("busy_backoff", 5)), cap=60)
        except botocore.exceptions.NoCredentialsError:
            raise SpecError("provider_options", "no AWS credentials were found",
                            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
                                 "provider_options.access_key/secret_key or profile, or attach an AWX "
                                 "'Amazon Web Services' credential")
        except botocore.exceptions.ClientError as exc:
            code = _code(exc)
            raise ProviderError("%s.%s failed: %s" % (service, operation, exc.response.get("Error", {}).get("Message", exc)),
                                code=code, hint=HINTS.get(code))
        except botocore.exceptions.BotoCoreError as exc:
            raise ProviderError("%s.%s failed: %s" % (service, operation, exc),
                                hint="check provider_options.region / endpoint_url and the network path to AWS")

    def _waiter(self, waiter_name, what, timeout, **kwargs):
        delay = max(1, self.poll_interval)
        try:
            self.client("eks").get_waiter(waiter_name).wait(
                WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(timeout // delay))}, **kwargs)
        except botocore.exceptions.WaiterError as exc:
            last = exc.last_response or {}
            status = ((last.get("cluster") or last.get("nodegroup") or {}).get("status")
                      or last.get("Error", {}).get("Code") or exc.kwargs.get("reason"))
            if "Max attempts exceeded" in str(exc.kwargs.get("reason")):
                # Still CREATING/UPDATING is not a failure and says nothing about capacity: say so.
                still = " (still %s)" % status if status in ("CREATING", "UPDATING", "DELETING") else ""
                raise WaitTimeout("timed out after %ss waiting for %s%s (last seen: %s)" % (timeout, what, still, status),
                                  code="WaitTimeout",
                                  hint="this is not a capacity failure: the resource is still being worked on. Run "
                                       "again later (it is picked up where it is), or raise wait_timeout")
            return last
        return None

    # -- checks --------------------------------------------------------------------------------------
    def validate(self, spec):
        if not spec.region:
            raise SpecError("region", "is required by the aws provider", hint="e.g. region: us-east-1")
        self.options.setdefault("region", spec.region)
        mode = self.options.get("authentication_mode", "API_AND_CONFIG_MAP")
        if mode not in ("API", "API_AND_CONFIG_MAP", "CONFIG_MAP"):
            raise SpecError("provider_options.authentication_mode", "must be API, API_AND_CONFIG_MAP or CONFIG_MAP, not %r" % mode,
                            hint="access entries (llmops_foundation.admin_principals) need API or API_AND_CONFIG_MAP")
        for index, pool in enumerate(spec.node_pools):
            node_config = dict(getattr(pool, "node_config", None) or {})
            user_data = node_config.get("user_data")
            if user_data is not None and not isinstance(user_data, str):
                raise SpecError("node_pools[%d].node_config.user_data" % index, "must be a string (the boot document)")
            if user_data and len(base64.b64encode(user_data.encode("utf-8"))) > 16384:
                raise SpecError("node_pools[%d].node_config.user_data" % index,
                                "is over EC2's 16 KiB limit for user data (base64)",
                                hint="move large files to S3 or the node image and fetch them at boot")
            self._wanted_node_config[pool.name] = node_config
            carried = [k for k in NODE_CONFIG_IN_USER_DATA if node_config.get(k)]
            if carried:
                self.record("node_pool/%s: EKS has no API field for node_config %s; on AL2023 they take effect "
                            "through the user data (nodeadm NodeConfig) %s" % (
                                pool.name, ", ".join(carried),
                                "the pool carries" if user_data else "which this pool does not have: NOT applied"))
        if self.options.get("foundation"):
            self._use_foundation(self.options["foundation"])
        for option in ("cluster_role_arn", "node_role_arn", "subnet_ids"):
            if not self.options.get(option):
                raise SpecError("provider_options.%s" % option, "is required by the aws provider",
                                hint="see docs/clouds.md for the IAM roles and subnets EKS needs")
        for index, pool in enumerate(spec.node_pools):
            candidates = gpu_catalog.instance_types_for("aws", pool, index)
            if pool.gpu and not self._offered(candidates, spec.region):
                raise SpecError("node_pools[%d].gpu.type" % index,
                                "%s (%s) is not offered in %s" % (pool.gpu.type, ", ".join(candidates), spec.region),
                                hint="choose another region; gpu_capacity_info lists where it is offered")
            if getattr(pool, "reservation", None) is not None:
                self._reserved[pool.name] = self._check_reservation(spec, pool, index, candidates)

    # -- reservations and capacity blocks (node_pools[].reservation) ------------------------------------
    def _check_reservation(self, spec, pool, index, candidates):
        """Read the pool's capacity reservation and refuse, before anything is created, one that cannot hold
        the pool. Returns {target, instance_type, zone}: the launch template's CapacityReservationTarget and
        where the node group must launch (None for a resource group, whose members EC2 picks)."""
        where = "node_pools[%d].reservation" % index
        wanted = pool.reservation
        if wanted.type not in RESERVATION_TYPES:
            raise SpecError(where + ".type", "%s is not an AWS reservation type" % wanted.type,
                            hint="use reservation (an On-Demand Capacity Reservation) or capacity_block (Capacity "
                                 "Blocks for ML); flex_start is GCP's")
        if wanted.name.startswith("arn:"):
            if wanted.type == "capacity_block":
                raise SpecError(where + ".name", "a capacity block is named by its cr-... id, not an ARN",
                                hint="copy the Capacity Block's reservation id (cr-...) from the EC2 console")
            # EC2 has no read of a resource group's reservations by ARN: only the pool's shape is sent.
            self.record("node_pool/%s: capacity reservation group %s is used as named; its reservations were not "
                        "checked against the pool" % (pool.name, wanted.name))
            return {"target": {"CapacityReservationResourceGroupArn": wanted.name}, "instance_type": None, "zone": None}
        try:
            found = self.call("ec2", "describe_capacity_reservations",
                              CapacityReservationIds=[wanted.name]).get("CapacityReservations", [])
        except ProviderError as exc:
            if not (exc.code or "").startswith("InvalidCapacityReservationId"):
                raise
            found = []
        if not found:
            raise SpecError(where + ".name", "capacity reservation %s does not exist in %s" % (wanted.name, spec.region),
                            hint="check the id (cr-...) and the region in the EC2 console, Capacity Reservations")
        held = found[0]
        problems = []
        kind = held.get("ReservationType") or "default"
        if kind != RESERVATION_TYPES[wanted.type]:
            problems.append("it is a %s reservation, the pool names a %s" % (kind, wanted.type))
        if held.get("State") != "active":
            problems.append("its state is %s, not active%s" % (held.get("State"), " (the block has not started)"
                                                               if held.get("State") == "scheduled" else ""))
        if candidates and held.get("InstanceType") not in candidates:
            problems.append("it holds %s, the pool runs %s" % (held.get("InstanceType"), ", ".join(candidates)))
        zone = held.get("AvailabilityZone")
        zones = sorted(set(self._subnets_for(pool, index).values()))
        if zone not in zones:
            problems.append("it is in %s, the pool's subnets are in %s" % (zone, ", ".join(zones)))
        if held.get("InstancePlatform") != LINUX_PLATFORM:
            problems.append("its platform is %s, EKS nodes run %s" % (held.get("InstancePlatform"), LINUX_PLATFORM))
        need = max(pool.count, pool.min_count or 0)
        if held.get("AvailableInstanceCount", 0) < need and not self._nodegroup_exists(spec.name, pool.name):
            # A pool already running on it has used it up: only a new pool needs free instances.
            problems.append("%s of its %s instances are free, the pool needs %d" % (
                held.get("AvailableInstanceCount", 0), held.get("TotalInstanceCount"), need))
        if problems:
            raise SpecError(where + ".name", "capacity reservation %s cannot hold node pool %s: %s"
                            % (wanted.name, pool.name, "; ".join(problems)),
                            hint="name a reservation that matches the pool, or change the pool to match it")
        return {"target": {"CapacityReservationId": wanted.name}, "instance_type": held["InstanceType"], "zone": zone}

    def _nodegroup_exists(self, cluster, pool):
        try:
            self.call("eks", "describe_nodegroup", clusterName=cluster, nodegroupName=pool)
            return True
        except ProviderError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            return False

    def _use_foundation(self, name):
        """Fill in what playbooks/foundations.yml created for `name` and the inventory did not give: the
        private subnets (tagged llmops.io/foundation=<name>, llmops.io/tier=private) and the roles
        <name>-eks-cluster and <name>-eks-node."""
        if not self.options.get("subnet_ids"):
            found = self.call("ec2", "describe_subnets", Filters=[
                {"Name": "tag:llmops.io/foundation", "Values": [name]},
                {"Name": "tag:llmops.io/tier", "Values": ["private"]}]).get("Subnets", [])
            if not found:
                raise SpecError("provider_options.foundation", "no private subnets tagged llmops.io/foundation=%s were found" % name,
                                hint="run playbooks/foundations.yml first (llmops_foundation.create: true), or give subnet_ids")
            self.options["subnet_ids"] = sorted(s["SubnetId"] for s in found)
        for option, suffix in (("cluster_role_arn", "eks-cluster"), ("node_role_arn", "eks-node")):
            if not self.options.get(option):
                try:
                    self.options[option] = self.call("iam", "get_role", RoleName="%s-%s" % (name, suffix))["Role"]["Arn"]
                except ProviderError as exc:
                    if exc.code != "NoSuchEntity":
                        raise
                    raise SpecError("provider_options.foundation", "the role %s-%s does not exist" % (name, suffix),
                                    hint="run playbooks/foundations.yml first, or give provider_options.%s" % option)

    def _offered(self, instance_types, region, zones=None):
        """Instance type -> zones where it is offered, for the given types (and zones, when given)."""
        filters = [{"Name": "instance-type", "Values": list(instance_types)}]
        if zones:
            filters.append({"Name": "location", "Values": list(zones)})
        offered = {}
        token = None
        while True:
            kwargs = {"LocationType": "availability-zone", "Filters": filters, "_region": region}
            if token:
                kwargs["NextToken"] = token
            page = self.call("ec2", "describe_instance_type_offerings", **kwargs)
            for item in page.get("InstanceTypeOfferings", []):
                offered.setdefault(item["InstanceType"], []).append(item["Location"])
            token = page.get("NextToken")
            if not token:
                return dict((k, sorted(v)) for k, v in offered.items())

    # -- reading state -------------------------------------------------------------------------------
    def get_cluster(self, name):
        try:
            cluster = self.call("eks", "describe_cluster", name=name)["cluster"]
        except ProviderError as exc:
            if exc.code == "ResourceNotFoundException":
                return None
            raise
        state = ClusterState(
            name=name,
            status=cluster.get("status", "UNKNOWN").lower(),
            region=self.options.get("region"),
            kubernetes_version=cluster.get("version"),
            endpoint=cluster.get("endpoint"),
            ca_data=(cluster.get("certificateAuthority") or {}).get("data"),
        )
        for group in self._nodegroups(name):
            state.node_pools[group["nodegroupName"]] = self._pool_state(group)
        return state

    # -- launch templates (node_config.user_data) --------------------------------------------------------
    @staticmethod
    def launch_template_name(cluster, pool):
        return "%s-%s" % (cluster, pool)

    def _launch_template(self, name):
        """The template called `name` (with its latest version's data), or None."""
        try:
            found = self.call("ec2", "describe_launch_templates", LaunchTemplateNames=[name]).get("LaunchTemplates", [])
        except ProviderError as exc:
            if exc.code in ("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound"):
                return None
            raise
        if not found:
            return None
        return self._launch_template_version(found[0]["LaunchTemplateId"], "$Latest")

    def _launch_template_version(self, template_id, version):
        versions = self.call("ec2", "describe_launch_template_versions", LaunchTemplateId=template_id,
                             Versions=[str(version)]).get("LaunchTemplateVersions", [])
        if not versions:
            return None
        data = versions[0].get("LaunchTemplateData") or {}
        user_data = data.get("UserData")
        disks = [m.get("Ebs", {}).get("VolumeSize") for m in data.get("BlockDeviceMappings") or []]
        return {"id": template_id, "version": versions[0]["VersionNumber"],
                "user_data": base64.b64decode(user_data).decode("utf-8") if user_data else None,
                "disk_size_gb": disks[0] if disks else None,
                "reservation": data.get("CapacityReservationSpecification"), "market": data.get("InstanceMarketOptions")}

    def _launch_template_data(self, pool, user_data):
        data = {
            # IMDSv2 only, with a hop limit that lets pods on the node (not beyond) reach it.
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2, "HttpEndpoint": "enabled"},
        }
        if user_data:
            data["UserData"] = base64.b64encode(user_data.encode("utf-8")).decode("ascii")
        reserved = self._reserved.get(pool.name)
        if reserved is not None:
            # Launch only into the named reservation: never fall silently onto unreserved on-demand capacity.
            data["CapacityReservationSpecification"] = {"CapacityReservationTarget": dict(reserved["target"])}
            if pool.reservation.type == "capacity_block":
                # EC2 launches into a Capacity Block only with this market type (EC2 User Guide, Capacity Blocks).
                data["InstanceMarketOptions"] = {"MarketType": "capacity-block"}
        if pool.disk_size_gb:
            # EKS refuses diskSize together with a launch template: the root volume is set here.
            data["BlockDeviceMappings"] = [{"DeviceName": "/dev/xvda", "Ebs": {
                "VolumeSize": pool.disk_size_gb, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}]
        return data

    def _ensure_launch_template(self, spec, pool):
        """Create the pool's template, or a new version when its user data or disk changed: {id, version}."""
        name = self.launch_template_name(spec.name, pool.name)
        user_data = (pool.node_config or {}).get("user_data")
        data = self._launch_template_data(pool, user_data)
        current = self._launch_template(name)
        if current is None:
            tags = [{"Key": k, "Value": v} for k, v in sorted(dict(spec.tags, **dict(MANAGED_BY, **{
                "llmops.io/cluster": spec.name, "llmops.io/node-pool": pool.name})).items())]
            made = self.call("ec2", "create_launch_template", LaunchTemplateName=name, LaunchTemplateData=data,
                             TagSpecifications=[{"ResourceType": "launch-template", "Tags": tags}])["LaunchTemplate"]
            return {"id": made["LaunchTemplateId"], "version": str(made.get("LatestVersionNumber", 1))}
        have = (current["user_data"], current["disk_size_gb"], current["reservation"], current["market"])
        if have == (user_data or None, pool.disk_size_gb or None, data.get("CapacityReservationSpecification"),
                    data.get("InstanceMarketOptions")):
            return {"id": current["id"], "version": str(current["version"])}
        made = self.call("ec2", "create_launch_template_version", LaunchTemplateId=current["id"], LaunchTemplateData=data,
                         VersionDescription="llmops.platform: node_config.user_data of %s" % pool.name)
        return {"id": current["id"], "version": str(made["LaunchTemplateVersion"]["VersionNumber"])}

    def _delete_launch_template(self, cluster, pool):
        current = self._launch_template(self.launch_template_name(cluster, pool))
        if current is not None:
            tags = dict((t["Key"], t["Value"]) for t in self.call("ec2", "describe_launch_templates", LaunchTemplateIds=[
                current["id"]])["LaunchTemplates"][0].get("Tags", []))
            if tags.get("llmops.io/managed-by") == MANAGED_BY["llmops.io/managed-by"]:  # never one we did not make
                self.call("ec2", "delete_launch_template", LaunchTemplateId=current["id"])

    def _nodegroups(self, cluster):
        names, token = [], None
        while True:
            kwargs = {"clusterName": cluster}
            if token:
                kwargs["nextToken"] = token
            page = self.call("eks", "list_nodegroups", **kwargs)
            names.extend(page.get("nodegroups", []))
            token = page.get("nextToken")
            if not token:
                break
        groups = []
        for name in sorted(names):
            group = self.call("eks", "describe_nodegroup", clusterName=cluster, nodegroupName=name)["nodegroup"]
            if group.get("status") != "DELETING":
                groups.append(group)
        return groups

    def _pool_state(self, group):
        scaling = group.get("scalingConfig") or {}
        types = group.get("instanceTypes") or []
        gpu = None
        if types:
            found, gpu_type = gpu_catalog.shape("aws", types[0])
            if found:
                gpu = GpuSpec(type=gpu_type, count=found.gpus)
        state = NodePoolState(
            name=group["nodegroupName"],
            status=group.get("status", "UNKNOWN").lower(),
            count=scaling.get("desiredSize", 0),
            min_count=scaling.get("minSize"),
            max_count=scaling.get("maxSize"),
            instance_types=list(types),
            gpu=gpu,
            labels=dict(group.get("labels") or {}),
            taints=[Taint(key=t["key"], value=t.get("value") or "", effect=EFFECT_FROM_EKS.get(t.get("effect"), t.get("effect")))
                    for t in group.get("taints") or []],
            capacity_type=CAPACITY_FROM_EKS.get(group.get("capacityType"), group.get("capacityType")),
            disk_size_gb=group.get("diskSize"),
        )
        template = group.get("launchTemplate") or {}
        used = self._launch_template_version(template["id"], template.get("version") or "$Default") if template.get("id") else None
        if used is not None and used["disk_size_gb"]:
            state.disk_size_gb = used["disk_size_gb"]
        # node_config as far as EKS can show it: the user data of the template version the group runs.
        # Keys with no EKS field are carried in that user data, so they are reported as asked.
        wanted = self._wanted_node_config.get(group["nodegroupName"], {})
        reported = dict((k, v) for k, v in wanted.items() if k != "user_data")
        if "user_data" in wanted:
            reported["user_data"] = used["user_data"] if used else None
        state.node_config = reported
        state.launch_template = template
        return state

    def list_nodes(self, name):
        """EC2 instances EKS launched for the cluster's node groups (tagged eks:cluster-name)."""
        nodes, token = [], None
        while True:
            kwargs = {"Filters": [{"Name": "tag:eks:cluster-name", "Values": [name]},
                                  {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]}
            if token:
                kwargs["NextToken"] = token
            page = self.call("ec2", "describe_instances", **kwargs)
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    tags = dict((t["Key"], t["Value"]) for t in instance.get("Tags", []))
                    address = instance.get("PrivateIpAddress")
                    nodes.append(Node(
                        name=instance.get("PrivateDnsName") or instance["InstanceId"],
                        pool=tags.get("eks:nodegroup-name", ""),
                        status=instance.get("State", {}).get("Name", "unknown"),
                        address=address,
                        connection={"ansible_connection": "ssh", "ansible_host": address or instance["InstanceId"],
                                    "instance_id": instance["InstanceId"]},
                    ))
            token = page.get("NextToken")
            if not token:
                return sorted(nodes, key=lambda n: n.name)

    # -- changing state ------------------------------------------------------------------------------
    def create_cluster(self, spec):
        kwargs = {
            "name": spec.name,
            "roleArn": self.options["cluster_role_arn"],
            "resourcesVpcConfig": {"subnetIds": list(self.options["subnet_ids"]),
                                   "securityGroupIds": list(self.options.get("security_group_ids") or [])},
            "tags": dict(spec.tags, **{"llmops.io/cluster": spec.name}),
        }
        if spec.kubernetes_version:
            kwargs["version"] = spec.kubernetes_version
        # Access entries (EKS access management API) need API or API_AND_CONFIG_MAP; the creator keeps
        # cluster-admin so the first run can install what comes next.
        kwargs["accessConfig"] = {"authenticationMode": self.options.get("authentication_mode", "API_AND_CONFIG_MAP"),
                                  "bootstrapClusterCreatorAdminPermissions": True}
        self.call("eks", "create_cluster", **kwargs)

    def update_cluster(self, spec, changes):
        if "kubernetes_version" in changes:
            self.call("eks", "update_cluster_version", name=spec.name, version=spec.kubernetes_version)
            self._wait_cluster_active(spec.name)

    def delete_cluster(self, name):
        # EKS refuses to delete a cluster that still has node groups; they were asked to go first.
        for group in self._nodegroups_any_status(name):
            self._waiter("nodegroup_deleted", "EKS node group %s of %s to be deleted" % (group, name),
                         self.operation_timeout, clusterName=name, nodegroupName=group)
        try:
            self.call("eks", "delete_cluster", name=name)
        except ProviderError as exc:
            if exc.code != "ResourceNotFoundException":
                raise

    def _nodegroups_any_status(self, name):
        # Ask for the cluster first: a missing cluster is the common case here (deletes are
        # idempotent), and describe_cluster answers it with a clean ResourceNotFoundException.
        try:
            self.call("eks", "describe_cluster", name=name)
            return self.call("eks", "list_nodegroups", clusterName=name).get("nodegroups", [])
        except ProviderError as exc:
            if exc.code == "ResourceNotFoundException":
                return []
            raise

    def _wait_cluster_active(self, name):
        last = self._waiter("cluster_active", "EKS cluster %s to become ACTIVE" % name, self.operation_timeout, name=name)
        if last is not None:
            raise ProviderError("EKS cluster %s did not become ACTIVE (status: %s)"
                                % (name, (last.get("cluster") or {}).get("status")), code="ClusterFailed",
                                hint="read the cluster's health in the EKS console or describe_cluster")

    def create_node_pool(self, spec, pool):
        self._wait_cluster_active(spec.name)
        index = spec.node_pools.index(pool)
        candidates = gpu_catalog.instance_types_for("aws", pool, index)
        if not candidates and pool.name not in self._reserved:
            # A CPU pool with no instance type named: EKS picks its default (t3.medium).
            self._create_nodegroup(spec, pool, None, list(self._subnets_for(pool, index)))
            self._wait_nodegroup(spec.name, pool.name, raise_on_failure=True)
            return
        self.create_pool_with_fallback(spec, pool)

    # -- capacity fallback (the loop is ClusterProvider.create_pool_with_fallback) ---------------------
    def pool_placements(self, spec, pool):
        """(instance type, subnets in the zones that offer it, or None with the zones when none does)."""
        index = spec.node_pools.index(pool)
        candidates = gpu_catalog.instance_types_for("aws", pool, index)
        subnets = self._subnets_for(pool, index)
        reserved = self._reserved.get(pool.name) or {}
        if reserved.get("instance_type"):
            # The reservation holds one type in one zone: the only placement that draws on it.
            return [(reserved["instance_type"], [s for s, z in subnets.items() if z == reserved["zone"]], [reserved["zone"]])]
        zones = sorted(set(subnets.values()))
        offered = self._offered(candidates, self.options["region"], zones) if zones else None
        placements = []
        for instance_type in candidates:
            if offered is not None and instance_type not in offered:
                placements.append((instance_type, None, zones))
                continue
            placements.append((instance_type, [s for s, z in subnets.items() if offered is None or z in offered[instance_type]],
                               zones))
        return placements

    def try_pool_placement(self, spec, pool, placement):
        instance_type, use_subnets, zones = placement
        if use_subnets is None:
            return CapacityMiss(code=None, reason="%s is not offered in %s" % (instance_type, ", ".join(zones)))
        self._create_nodegroup(spec, pool, instance_type, use_subnets)
        problem = self._wait_nodegroup(spec.name, pool.name, raise_on_failure=False)
        if problem is None:
            return None
        quota = any(marker in problem for marker in QUOTA_MARKERS)
        if not quota and not any(marker in problem for marker in CAPACITY_MARKERS):
            raise ProviderError("EKS node group %s failed to launch: %s" % (pool.name, problem), code="CREATE_FAILED",
                                hint="read the node group's health issues in the EKS console")
        self.abandon_pool_placement(spec, pool, placement)
        if quota:
            # The vCPU quota is per region, capacity type and family letter: every zone and size of the
            # family draws on it, so they are skipped; another family (or capacity type) may still fit.
            family = _family(instance_type)
            return CapacityMiss(code="VcpuLimitExceeded", reason="%s: the %s quota is exhausted (%s)" % (
                instance_type, QUOTA_CODES[(family, pool.capacity_type)][1], problem),
                rules_out=lambda candidate: _family(candidate[0]) == family)
        return CapacityMiss(code="InsufficientInstanceCapacity", reason="%s%s had no capacity (%s)" % (
            instance_type, " spot" if pool.capacity_type == "spot" else "", problem))

    def abandon_pool_placement(self, spec, pool, placement):
        """Delete the attempt's node group and wait until it is gone: the next attempt reuses its name."""
        self.call("eks", "delete_nodegroup", clusterName=spec.name, nodegroupName=pool.name)
        self._waiter("nodegroup_deleted", "abandoned EKS node group %s to be deleted" % pool.name,
                     self.operation_timeout, clusterName=spec.name, nodegroupName=pool.name)

    def placement_fields(self, placement):
        return {"instance_type": placement[0], "zones": list(placement[2] or [])}

    def pool_placed(self, spec, pool, placement, misses):
        if misses:
            self.record("node_pool/%s: %s; using %s" % (pool.name, "; ".join(m.reason for m in misses), placement[0]))

    def no_capacity_error(self, spec, pool, candidates, misses):
        return ProviderError("no instance type for node pool %s could be launched: %s"
                             % (pool.name, "; ".join(m.reason for m in misses)),
                             code="InsufficientInstanceCapacity",
                             hint="add instance types or zones to the pool, a fallback (capacity_types: [spot, "
                                  "on_demand], gpu_types), or use another region (gpu_capacity_info lists "
                                  "offerings, quotas and prices)")

    def _subnets_for(self, pool, index):
        """Subnet id -> zone for the pool: the provider's subnets, narrowed to the pool's zones."""
        subnet_ids = list(self.options.get("node_subnet_ids") or self.options["subnet_ids"])
        found = self.call("ec2", "describe_subnets", SubnetIds=subnet_ids).get("Subnets", [])
        by_id = dict((s["SubnetId"], s["AvailabilityZone"]) for s in found)
        if pool.zones:
            by_id = dict((s, z) for s, z in by_id.items() if z in pool.zones)
            if not by_id:
                raise SpecError("node_pools[%d].zones" % index, "none of the subnets is in %s" % ", ".join(pool.zones),
                                hint="list zones that provider_options.subnet_ids cover")
        # Preference order of zones follows pool.zones when given.
        order = dict((z, i) for i, z in enumerate(pool.zones))
        return dict(sorted(by_id.items(), key=lambda item: (order.get(item[1], 0), item[1], item[0])))

    def _create_nodegroup(self, spec, pool, instance_type, subnets):
        scaling = {"desiredSize": pool.count,
                   "minSize": pool.min_count if pool.min_count is not None else min(pool.count, 1) if pool.count else 0,
                   "maxSize": pool.max_count if pool.max_count is not None else max(pool.count, 1)}
        kwargs = {
            "clusterName": spec.name,
            "nodegroupName": pool.name,
            "scalingConfig": scaling,
            "subnets": subnets,
            "nodeRole": self.options["node_role_arn"],
            "labels": dict(pool.labels),
            "taints": [{"key": t.key, "value": t.value, "effect": EFFECT_TO_EKS[t.effect]} for t in pool.taints],
            "capacityType": "CAPACITY_BLOCK" if self._capacity_block(pool) else CAPACITY_TO_EKS[pool.capacity_type],
            "amiType": self.options.get("gpu_ami_type" if pool.gpu else "ami_type")
            or ("AL2023_x86_64_NVIDIA" if pool.gpu else "AL2023_x86_64_STANDARD"),
            "tags": dict(spec.tags, **{"llmops.io/cluster": spec.name, "llmops.io/node-pool": pool.name}),
        }
        if instance_type:
            kwargs["instanceTypes"] = [instance_type]
        if (getattr(pool, "node_config", None) or {}).get("user_data") or pool.name in self._reserved:
            kwargs["launchTemplate"] = self._ensure_launch_template(spec, pool)
        elif pool.disk_size_gb:
            kwargs["diskSize"] = pool.disk_size_gb
        self.call("eks", "create_nodegroup", **kwargs)

    def _capacity_block(self, pool):
        return pool.name in self._reserved and pool.reservation.type == "capacity_block"

    def _wait_nodegroup(self, cluster, pool, raise_on_failure):
        """Wait for ACTIVE. Returns None when active, else the health issues as text."""
        last = self._waiter("nodegroup_active", "EKS node group %s of %s to become ACTIVE" % (pool, cluster),
                            self.operation_timeout, clusterName=cluster, nodegroupName=pool)
        if last is None:
            return None
        group = last.get("nodegroup") or {}
        issues = "; ".join("%s: %s" % (i.get("code"), i.get("message")) for i in (group.get("health") or {}).get("issues", []))
        problem = issues or "status %s" % group.get("status")
        if raise_on_failure:
            raise ProviderError("EKS node group %s failed: %s" % (pool, problem), code=group.get("status"))
        return problem

    def update_node_pool(self, spec, pool, changes):
        if "node_config" in changes:
            self._roll_out_user_data(spec, pool)
        kwargs = {"clusterName": spec.name, "nodegroupName": pool.name}
        if set(changes) & set(["count", "min_count", "max_count"]):
            current = self.call("eks", "describe_nodegroup", **kwargs)["nodegroup"].get("scalingConfig") or {}
            minimum = pool.min_count if pool.min_count is not None else min(current.get("minSize", 0), pool.count)
            maximum = pool.max_count if pool.max_count is not None else max(current.get("maxSize", 1), pool.count, 1)
            kwargs["scalingConfig"] = {"desiredSize": pool.count, "minSize": minimum, "maxSize": maximum}
        if "labels" in changes:
            have, want = changes["labels"]
            kwargs["labels"] = {"addOrUpdateLabels": dict(want)}
            removed = sorted(set(have or {}) - set(want))
            if removed:
                kwargs["labels"]["removeLabels"] = removed
        if "taints" in changes:
            have, want = changes["taints"]
            kwargs["taints"] = {"addOrUpdateTaints": [{"key": t.key, "value": t.value, "effect": EFFECT_TO_EKS[t.effect]}
                                                      for t in want]}
            wanted = set((t.key, t.effect) for t in want)
            removed = [{"key": t.key, "value": t.value, "effect": EFFECT_TO_EKS[t.effect]}
                       for t in have or [] if (t.key, t.effect) not in wanted]
            if removed:
                kwargs["taints"]["removeTaints"] = removed
        if len(kwargs) > 2:
            self.call("eks", "update_nodegroup_config", **kwargs)

    def _roll_out_user_data(self, spec, pool):
        """New user data: a new launch template version, then UpdateNodegroupVersion (a rolling replacement)."""
        group = self.call("eks", "describe_nodegroup", clusterName=spec.name, nodegroupName=pool.name)["nodegroup"]
        template = group.get("launchTemplate") or {}
        if not (pool.node_config or {}).get("user_data"):
            return
        if not template.get("id"):
            self.record("node_pool/%s: node_config.user_data is new, but the node group was created without a launch "
                        "template and EKS cannot add one to an existing group: NOT applied; replace the node pool "
                        "(delete it, or rename it) to boot its nodes with the user data" % pool.name)
            return
        ensured = self._ensure_launch_template(spec, pool)
        if ensured["id"] != template["id"]:
            self.record("node_pool/%s: the node group uses launch template %s, not ours (%s): NOT changed"
                        % (pool.name, template["id"], ensured["id"]))
            return
        # The node group must be ACTIVE before it takes another update.
        self._wait_nodegroup(spec.name, pool.name, raise_on_failure=True)
        self.call("eks", "update_nodegroup_version", clusterName=spec.name, nodegroupName=pool.name,
                  launchTemplate=ensured)
        self.record("node_pool/%s: user data changed; rolling out launch template %s version %s"
                    % (pool.name, ensured["id"], ensured["version"]))

    def delete_node_pool(self, cluster_name, pool_name):
        try:
            self.call("eks", "delete_nodegroup", clusterName=cluster_name, nodegroupName=pool_name)
        except ProviderError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
        if self._launch_template(self.launch_template_name(cluster_name, pool_name)) is not None:
            # A template in use cannot be deleted: wait for the node group to go first.
            self._waiter("nodegroup_deleted", "EKS node group %s of %s to be deleted" % (pool_name, cluster_name),
                         self.operation_timeout, clusterName=cluster_name, nodegroupName=pool_name)
            self._delete_launch_template(cluster_name, pool_name)

    # -- waiting -------------------------------------------------------------------------------------
    def wait_for_cluster(self, name, state, timeout):
        if state == "absent":
            self._waiter("cluster_deleted", "EKS cluster %s to be deleted" % name, timeout, name=name)
            return
        last = self._waiter("cluster_active", "EKS cluster %s to become ACTIVE" % name, timeout, name=name)
        if last is not None:
            raise ProviderError("EKS cluster %s is %s" % (name, (last.get("cluster") or {}).get("status")), code="ClusterFailed")
        for group in self._nodegroups_any_status(name):
            self._wait_nodegroup(name, group, raise_on_failure=True)

    # -- kubeconfig and capacity ---------------------------------------------------------------------
    def kubeconfig(self, name):
        cluster = self.call("eks", "describe_cluster", name=name)["cluster"]
        arn = cluster.get("arn", name)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": arn, "cluster": {"server": cluster["endpoint"],
                                                   "certificate-authority-data": (cluster.get("certificateAuthority") or {}).get("data")}}],
            "contexts": [{"name": arn, "context": {"cluster": arn, "user": arn}}],
            "current-context": arn,
            "users": [{"name": arn, "user": {"exec": {
                # Short-lived tokens from the AWS CLI's documented exec plugin; no secret is stored here.
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["--region", self.options["region"], "eks", "get-token", "--cluster-name", name, "--output", "json"],
                "interactiveMode": "Never",
            }}}],
        }

    def gpu_capacity(self, gpu_type, count, regions, capacity_type="on_demand"):
        offers = []
        shapes = gpu_catalog.shapes_for("aws", gpu_type, count)
        regions = list(regions or ([self.options["region"]] if self.options.get("region") else []))
        if not regions:
            raise SpecError("region", "is required by the aws provider to look for GPU capacity (none was given)",
                            hint="set region (e.g. us-east-1) or regions: [us-east-1, us-west-2]")
        for region in regions:
            offered = self._offered([s.instance_type for s in shapes], region)
            vcpus = self._vcpus(sorted(offered), region)
            quotas = {}
            for s in shapes:
                family = _family(s.instance_type)
                if family not in quotas:
                    quotas[family] = self._quota(region, family, capacity_type)
                quota_code, quota_name, limit = quotas[family]
                for zone in offered.get(s.instance_type, []):
                    offers.append(CapacityOffer(region=region, zone=zone, instance_type=s.instance_type,
                                                gpus_per_node=s.gpus, quota_name="%s (%s)" % (quota_name, quota_code),
                                                quota_limit=limit, quota_unit="vCPUs" if limit is not None else None,
                                                quota_per_node=vcpus.get(s.instance_type)))
        return offers

    def _vcpus(self, instance_types, region):
        """Instance type -> vCPUs (what one node draws on the vCPU quota), from DescribeInstanceTypes."""
        if not instance_types:
            return {}
        try:
            page = self.call("ec2", "describe_instance_types", InstanceTypes=list(instance_types), _region=region)
        except ProviderError as exc:
            self.record("%s: vCPUs of %s could not be read (%s)" % (region, ", ".join(instance_types), exc.code or exc.message))
            return {}
        return dict((t["InstanceType"], float(t["VCpuInfo"]["DefaultVCpus"])) for t in page.get("InstanceTypes", []))

    def _quota(self, region, family, capacity_type):
        code, name = QUOTA_CODES[(family, capacity_type)]
        try:
            quota = self.call("service-quotas", "get_service_quota", ServiceCode="ec2", QuotaCode=code, _region=region)
            return code, name, quota.get("Quota", {}).get("Value")
        except ProviderError as exc:
            self.record("%s: the %s quota could not be read (%s)" % (region, name, exc.code or exc.message))
            return code, name, None


def _family(instance_type):
    """The vCPU quota family of a GPU instance type (QUOTA_CODES): P for p*, G (G and VT) otherwise."""
    return "P" if instance_type.startswith("p") else "G"


def _code(exc):
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code")
