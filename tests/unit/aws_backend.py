"""AWS test backend: moto in server mode on loopback, reached by real boto3 over HTTP.

Two things moto does not do are added in front of it by a small proxy, each following AWS's
documented behaviour:
- capacity failures: EKS launches a node group, then reports it CREATE_FAILED with the health issue
  AsgInstanceLaunchFailures / InsufficientInstanceCapacity (moto never runs out of capacity): for a type
  everywhere (`no_capacity`), or by `launch_failures` rules: a type in some zones (the group fails when
  every zone of its subnets is out, as its Auto Scaling group moves past a zone that is), for one capacity
  type, or with VcpuLimitExceeded (the account's vCPU quota for the family is used up);
- Service Quotas for EC2 (moto implements only VPC quotas): answered from a recorded
  GetServiceQuota response (API reference: Service Quotas 2019-06-24, GetServiceQuota).
- EKS access entries (CreateAccessEntry, DescribeAccessEntry, ListAccessEntries, DeleteAccessEntry,
  AssociateAccessPolicy, ListAssociatedAccessPolicies, DisassociateAccessPolicy) and
  UpdateNodegroupVersion, which moto lacks: answered in the shapes of the EKS API reference
  (2017-11-01) and kept per cluster; every such request is checked against botocore's model with
  ParamValidator before it is answered (a request the real API would refuse is answered 400 and
  recorded in `invalid`).
- DescribeTags for NAT gateways: EC2's resource type is "natgateway", moto files them as
  "nat-gateway"; the filter is translated so amazon.aws.ec2_vpc_nat_gateway sees its tags.
- a node group that stays CREATING (`stay_creating`), as a slow create does when the wait ends.
- DescribeCapacityReservations, which moto lacks: answered from `capacity_reservations` (id -> the
  CapacityReservation fields, as botocore's EC2 model names them) in the EC2 query API's XML, with
  InvalidCapacityReservationId.NotFound for an id not there; the request is checked against the model.
Everything else passes through to moto unchanged. EC2 instances for node groups are launched in moto
by `sync_nodes`, standing in for the Auto Scaling group EKS would manage.
"""
import http.client
import http.server
import json
import logging
import os
import re
import threading
import urllib.parse

import boto3
import botocore.session
import botocore.validate
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}
NODEGROUP_PATH = re.compile(r"^/clusters/([^/]+)/node-groups/([^/?]+)")
CREATE_PATH = re.compile(r"^/clusters/([^/]+)/node-groups/?$")
ACCESS_PATH = re.compile(r"^/clusters/([^/]+)/access-entries(?:/([^/?]+)(?:/access-policies(?:/([^/?]+))?)?)?/?(?:\?.*)?$")
VERSION_PATH = re.compile(r"^/clusters/([^/]+)/node-groups/([^/?]+)/update-version$")
EKS_MODEL = botocore.session.get_session().get_service_model("eks")
EC2_MODEL = botocore.session.get_session().get_service_model("ec2")


def validate_request(operation, params):
    """Errors botocore's ParamValidator finds in `params` for the EKS `operation` ('' when valid)."""
    report = botocore.validate.ParamValidator().validate(params, EKS_MODEL.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else ""


class FaultProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream):
        self.upstream = upstream
        self.no_capacity = set()  # instance types that fail to launch
        # dicts: instance_type, zones (None: all), capacity_type (ON_DEMAND/SPOT, None: both), code
        # (InsufficientInstanceCapacity, VcpuLimitExceeded, or Pending: the group stays CREATING)
        self.launch_failures = []
        self.subnet_zones = {}  # subnet id -> zone, to know where a node group launches
        self.nodegroup_types = {}  # (cluster, nodegroup) -> instance types of the last create
        self.nodegroup_creates = {}  # (cluster, nodegroup) -> the last CreateNodegroup body
        self.quotas = {}  # quota code -> value answered by GetServiceQuota
        self.requests = []  # (method, path, operation) seen, for request-shape assertions
        self.bodies = []  # (method, path, JSON body) of EKS REST writes, for schema checks
        self.access_entries = {}  # cluster -> {principal: {"entry": {...}, "policies": {arn: scope}}}
        self.nodegroup_versions = {}  # (cluster, nodegroup) -> launchTemplate set by UpdateNodegroupVersion
        self.stay_creating = set()  # node group names reported CREATING whatever moto says
        self.invalid = []  # (operation, report) of requests the real API would refuse
        # X-Amz-Target -> answer(request JSON) -> (status, JSON): JSON-protocol operations moto lacks
        # (the Price List Query API), answered by the test that needs them.
        self.json_answers = {}
        self.capacity_reservations = {}  # id -> CapacityReservation fields (DescribeCapacityReservations)
        super(FaultProxy, self).__init__(("127.0.0.1", 0), ProxyHandler)

    def mutations(self, since=0):
        """Requests after index `since` that change something (EKS REST writes, EC2 non-Describe actions)."""
        found = []
        for method, path, operation in self.requests[since:]:
            if path.startswith("/clusters") and method in ("POST", "PUT", "DELETE"):
                found.append((method, path))
            elif operation and not operation.split(".")[-1].startswith(("Describe", "Get", "List")):
                found.append((method, operation))
        return found

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        action = re.search(r"(?:^|&)Action=([A-Za-z]+)", body.decode("latin-1"))
        self.server.requests.append((self.command, self.path, action.group(1) if action else target))
        if action and action.group(1) == "DescribeCapacityReservations":
            return self._capacity_reservations(urllib.parse.parse_qs(body.decode("latin-1")))
        if target.endswith("GetServiceQuota"):
            return self._service_quota(json.loads(body or b"{}"))
        if target in self.server.json_answers:
            status, data = self.server.json_answers[target](json.loads(body or b"{}"))
            return self._json(status, data, "application/x-amz-json-1.1")
        if self.path.startswith("/clusters") and self.command in ("POST", "PUT") and body:
            self.server.bodies.append((self.command, self.path, json.loads(body)))
        access = ACCESS_PATH.match(self.path)
        if access:
            return self._access(access.group(1), *(urllib.parse.unquote(g) if g else g for g in access.groups()[1:]),
                                body=json.loads(body or b"{}"))
        gone = re.match(r"^/clusters/([^/?]+)$", self.path)
        if gone and self.command == "DELETE":  # access entries go with their cluster
            self.server.access_entries.pop(gone.group(1), None)
        version = VERSION_PATH.match(self.path)
        if version and self.command == "POST":
            return self._update_version(version.group(1), version.group(2), json.loads(body or b"{}"))
        create = CREATE_PATH.match(self.path)
        if self.command == "POST" and create:
            data = json.loads(body or b"{}")
            self.server.nodegroup_types[(create.group(1), data.get("nodegroupName"))] = data.get("instanceTypes") or []
            self.server.nodegroup_creates[(create.group(1), data.get("nodegroupName"))] = data
        if action and action.group(1) == "DescribeTags" and b"=natgateway" in body:
            # moto files NAT gateway tags under resource type "nat-gateway"; EC2 calls it "natgateway".
            body = body.replace(b"=natgateway", b"=nat-gateway")
        conn = http.client.HTTPConnection(*self.server.upstream)
        headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ("host", "content-length"))
        if body or self.headers.get("Content-Length"):
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        described = NODEGROUP_PATH.match(self.path)
        if self.command == "GET" and described and response.status == 200:
            payload = self._maybe_fail(described.group(1), described.group(2), payload)
            payload = self._overlay(described.group(1), described.group(2), payload)
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(key, value)
        # A HEAD answer has no body but keeps the upstream's Content-Length (the object's size).
        upstream_length = response.getheader("Content-Length")
        length = upstream_length if self.command == "HEAD" and upstream_length else str(len(payload))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _launch_failure(self, cluster, nodegroup):
        """The failure code a node group's launch meets, or None."""
        types = self.server.nodegroup_types.get((cluster, nodegroup)) or []
        if not types:
            return None
        if types[0] in self.server.no_capacity:
            return "InsufficientInstanceCapacity"
        create = self.server.nodegroup_creates.get((cluster, nodegroup)) or {}
        zones = set(self.server.subnet_zones.get(s) for s in create.get("subnets") or [])
        kind = create.get("capacityType", "ON_DEMAND")
        for rule in self.server.launch_failures:
            if rule["instance_type"] == types[0] and rule.get("capacity_type") in (None, kind) and (
                    rule.get("zones") is None or zones <= set(rule["zones"])):
                return rule.get("code", "InsufficientInstanceCapacity")
        return None

    def _maybe_fail(self, cluster, nodegroup, payload):
        code = self._launch_failure(cluster, nodegroup)
        if code is None:
            return payload
        data = json.loads(payload)
        group = data["nodegroup"]
        if code == "Pending":
            # A stockout the cloud has not admitted yet: the group just stays CREATING.
            group["status"] = "CREATING"
            return json.dumps(data).encode()
        instance_type = group.get("instanceTypes", ["?"])[0]
        kind = "Spot" if group.get("capacityType") == "SPOT" else "On-Demand"
        # The words of the Auto Scaling launch failures (EC2 Auto Scaling User Guide, "Troubleshoot
        # instance launch failure"), as the EKS health issue carries them.
        if code == "VcpuLimitExceeded":
            words = ("VcpuLimitExceeded - You have requested more vCPU capacity than your current vCPU limit of 0 "
                     "allows for the instance bucket that the specified instance type belongs to.")
        else:
            words = ("InsufficientInstanceCapacity - We currently do not have sufficient %s capacity in the "
                     "Availability Zone you requested (%sa)." % (instance_type, REGION))
        if group.get("status") == "ACTIVE":
            group["status"] = "CREATE_FAILED"
            group["health"] = {"issues": [{
                "code": "AsgInstanceLaunchFailures",
                "message": "Could not launch %s Instances. %s Launching EC2 instance failed." % (kind, words),
                "resourceIds": ["eks-%s-asg" % nodegroup]}]}
        return json.dumps(data).encode()

    def _overlay(self, cluster, nodegroup, payload):
        data = json.loads(payload)
        group = data.get("nodegroup")
        if group is None:
            return payload
        if nodegroup in self.server.stay_creating:
            group["status"] = "CREATING"
        if (cluster, nodegroup) in self.server.nodegroup_versions:
            group["launchTemplate"] = dict(group.get("launchTemplate") or {},
                                           **self.server.nodegroup_versions[(cluster, nodegroup)])
        return json.dumps(data).encode()

    def _json(self, status, data, content_type="application/json"):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, code, message):
        # EKS errors: the x-amzn-ErrorType header names the exception (REST-JSON protocol).
        body = json.dumps({"message": message}).encode()
        self.send_response(status)
        self.send_header("x-amzn-ErrorType", code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _checked(self, operation, params):
        problem = validate_request(operation, params)
        if problem:
            self.server.invalid.append((operation, problem))
            self._error(400, "InvalidParameterException", problem)
        return not problem

    def _cluster_exists(self, cluster):
        eks = boto3.client("eks", region_name=REGION, endpoint_url="http://%s:%d" % self.server.upstream,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        try:
            return eks.describe_cluster(name=cluster)["cluster"]
        except eks.exceptions.ResourceNotFoundException:
            return None

    def _access(self, cluster, principal, policy, body):
        cluster_data = self._cluster_exists(cluster)
        if cluster_data is None:
            return self._error(404, "ResourceNotFoundException", "No cluster found for name: %s." % cluster)
        entries = self.server.access_entries.setdefault(cluster, {})
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        if principal is None and self.command == "POST":
            params = dict(body, clusterName=cluster)
            if not self._checked("CreateAccessEntry", params):
                return None
            if body["principalArn"] in entries:
                return self._error(409, "ResourceInUseException", "The specified access entry resource is already in use on this cluster.")
            entry = {"clusterName": cluster, "principalArn": body["principalArn"], "kubernetesGroups": body.get("kubernetesGroups", []),
                     "accessEntryArn": "arn:aws:eks:%s:123456789012:access-entry/%s/role/123456789012/x/%d" % (REGION, cluster, len(entries)),
                     "createdAt": 1700000000.0, "modifiedAt": 1700000000.0, "tags": body.get("tags", {}),
                     "username": body.get("username") or body["principalArn"], "type": body.get("type", "STANDARD")}
            entries[body["principalArn"]] = {"entry": entry, "policies": {}}
            return self._json(200, {"accessEntry": entry})
        if principal is None and self.command == "GET":
            if not self._checked("ListAccessEntries", dict(clusterName=cluster, **dict((k, v[0]) for k, v in query.items()))):
                return None
            return self._json(200, {"accessEntries": sorted(entries)})
        if principal not in entries:
            return self._error(404, "ResourceNotFoundException", "The specified principalArn could not be found.")
        item = entries[principal]
        if policy is None and self.command == "GET" and self.path.split("?")[0].endswith("/access-policies"):
            if not self._checked("ListAssociatedAccessPolicies", dict(clusterName=cluster, principalArn=principal)):
                return None
            return self._json(200, {"clusterName": cluster, "principalArn": principal, "associatedAccessPolicies": [
                {"policyArn": arn, "accessScope": scope, "associatedAt": 1700000000.0, "modifiedAt": 1700000000.0}
                for arn, scope in sorted(item["policies"].items())]})
        if policy is None and self.command == "POST":
            if not self._checked("AssociateAccessPolicy", dict(body, clusterName=cluster, principalArn=principal)):
                return None
            item["policies"][body["policyArn"]] = body["accessScope"]
            return self._json(200, {"clusterName": cluster, "principalArn": principal, "associatedAccessPolicy": {
                "policyArn": body["policyArn"], "accessScope": body["accessScope"], "associatedAt": 1700000000.0,
                "modifiedAt": 1700000000.0}})
        if policy is not None and self.command == "DELETE":
            if not self._checked("DisassociateAccessPolicy", dict(clusterName=cluster, principalArn=principal, policyArn=policy)):
                return None
            item["policies"].pop(policy, None)
            return self._json(200, {})
        if self.command == "GET":
            if not self._checked("DescribeAccessEntry", dict(clusterName=cluster, principalArn=principal)):
                return None
            return self._json(200, {"accessEntry": item["entry"]})
        if self.command == "DELETE":
            if not self._checked("DeleteAccessEntry", dict(clusterName=cluster, principalArn=principal)):
                return None
            del entries[principal]
            return self._json(200, {})
        return self._error(400, "InvalidRequestException", "unsupported access entry request %s %s" % (self.command, self.path))

    def _update_version(self, cluster, nodegroup, body):
        if not self._checked("UpdateNodegroupVersion", dict(body, clusterName=cluster, nodegroupName=nodegroup)):
            return None
        if body.get("launchTemplate"):
            self.server.nodegroup_versions[(cluster, nodegroup)] = body["launchTemplate"]
        return self._json(200, {"update": {"id": "u-%d" % len(self.server.nodegroup_versions), "status": "InProgress",
                                           "type": "VersionUpdate", "params": [], "createdAt": 1700000000.0, "errors": []}})

    def _capacity_reservations(self, query):
        """DescribeCapacityReservations (EC2 API reference) in the query protocol's XML."""
        ids = [v[0] for k, v in sorted(query.items()) if k.startswith("CapacityReservationId.")]
        report = botocore.validate.ParamValidator().validate(
            {"CapacityReservationIds": ids}, EC2_MODEL.operation_model("DescribeCapacityReservations").input_shape)
        if report.has_errors():
            self.server.invalid.append(("DescribeCapacityReservations", report.generate_report()))
        missing = [i for i in ids if i not in self.server.capacity_reservations]
        if missing:
            body = ("<Response><Errors><Error><Code>InvalidCapacityReservationId.NotFound</Code><Message>The "
                    "capacity reservation ID '%s' does not exist</Message></Error></Errors><RequestID>r-1</RequestID>"
                    "</Response>" % missing[0])
            return self._xml(400, body)
        items = []
        for cr_id in ids or sorted(self.server.capacity_reservations):
            fields = dict(self.server.capacity_reservations[cr_id], CapacityReservationId=cr_id)
            # The query protocol's XML names members in lowerCamelCase (InstanceType -> instanceType).
            tags = [(k[0].lower() + k[1:], v) for k, v in sorted(fields.items())]
            items.append("<item>%s</item>" % "".join("<%s>%s</%s>" % (tag, v, tag) for tag, v in tags))
        return self._xml(200, '<DescribeCapacityReservationsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
                         "<requestId>r-1</requestId><capacityReservationSet>%s</capacityReservationSet>"
                         "</DescribeCapacityReservationsResponse>" % "".join(items))

    def _xml(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _service_quota(self, request):
        code = request.get("QuotaCode")
        if request.get("ServiceCode") != "ec2" or code not in self.server.quotas:
            body = json.dumps({"__type": "NoSuchResourceException", "Message": "The request failed because the "
                               "specified service does not exist."}).encode()
            status = 400
        else:
            body = json.dumps({"Quota": {
                "ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                "QuotaArn": "arn:aws:servicequotas:%s:123456789012:ec2/%s" % (REGION, code),
                "QuotaCode": code, "QuotaName": "Running On-Demand G and VT instances",
                "Value": self.server.quotas[code], "Unit": "None", "Adjustable": True, "GlobalQuota": False}}).encode()
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


class AwsBackend(object):
    """moto + proxy, plus a VPC with subnets in three zones and the ARNs EKS needs."""

    def __init__(self):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        # The AWS managed policies (AmazonEKSClusterPolicy, ...) exist in every real account; moto has
        # them only when asked, before its IAM backend is first used.
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        self.proxy = FaultProxy(self.moto.get_host_and_port())
        threading.Thread(target=self.proxy.serve_forever, daemon=True).start()
        self.ec2 = self.client("ec2")
        vpc = self.ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
        self.subnets = {}
        for i, zone in enumerate(["us-east-1a", "us-east-1b", "us-east-1c"]):
            subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.%d.0/24" % i, AvailabilityZone=zone)
            self.subnets[subnet["Subnet"]["SubnetId"]] = zone
        self.proxy.subnet_zones.update(self.subnets)

    def client(self, service, region=REGION):
        return boto3.client(service, region_name=region, endpoint_url=self.proxy.url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def provider_options(self, **extra):
        options = dict(CREDENTIALS, endpoint_url=self.proxy.url, poll_interval=1, busy_backoff=0,
                       cluster_role_arn="arn:aws:iam::123456789012:role/llmops-eks-cluster",
                       node_role_arn="arn:aws:iam::123456789012:role/llmops-eks-node",
                       subnet_ids=sorted(self.subnets))
        options.update(extra)
        return options

    def sync_nodes(self, cluster):
        """Act as the node groups' Auto Scaling groups: run as many tagged instances as desired."""
        eks = self.client("eks")
        try:
            groups = eks.list_nodegroups(clusterName=cluster)["nodegroups"]
        except eks.exceptions.ResourceNotFoundException:
            groups = []
        wanted = dict((g, eks.describe_nodegroup(clusterName=cluster, nodegroupName=g)["nodegroup"]) for g in groups)
        running = {}
        for reservation in self.ec2.describe_instances(Filters=[
                {"Name": "tag:eks:cluster-name", "Values": [cluster]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]:
            for instance in reservation["Instances"]:
                tags = dict((t["Key"], t["Value"]) for t in instance.get("Tags", []))
                running.setdefault(tags.get("eks:nodegroup-name"), []).append(instance["InstanceId"])
        for group, have in running.items():
            want = wanted[group]["scalingConfig"]["desiredSize"] if group in wanted else 0
            if len(have) > want:
                self.ec2.terminate_instances(InstanceIds=sorted(have)[want:])
        for group, data in wanted.items():
            missing = data["scalingConfig"]["desiredSize"] - len(running.get(group, []))
            if missing > 0:
                self.ec2.run_instances(
                    ImageId="ami-12c6146b", MinCount=missing, MaxCount=missing,
                    InstanceType=(data.get("instanceTypes") or ["t3.medium"])[0],
                    SubnetId=data["subnets"][0],
                    TagSpecifications=[{"ResourceType": "instance", "Tags": [
                        {"Key": "eks:cluster-name", "Value": cluster},
                        {"Key": "eks:nodegroup-name", "Value": group}]}])

    def close(self):
        self.proxy.shutdown()
        self.moto.stop()
