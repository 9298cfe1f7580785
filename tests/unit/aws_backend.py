"""AWS test backend: moto in server mode on loopback, reached by real boto3 over HTTP.

Two things moto does not do are added in front of it by a small proxy, each following AWS's
documented behaviour:
- capacity failures: EKS launches a node group, then reports it CREATE_FAILED with the health issue
  AsgInstanceLaunchFailures / InsufficientInstanceCapacity (moto never runs out of capacity);
- Service Quotas for EC2 (moto implements only VPC quotas): answered from a recorded
  GetServiceQuota response (API reference: Service Quotas 2019-06-24, GetServiceQuota).
Everything else passes through to moto unchanged. EC2 instances for node groups are launched in moto
by `sync_nodes`, standing in for the Auto Scaling group EKS would manage.
"""
import http.client
import http.server
import json
import logging
import re
import threading

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}
NODEGROUP_PATH = re.compile(r"^/clusters/([^/]+)/node-groups/([^/?]+)")
CREATE_PATH = re.compile(r"^/clusters/([^/]+)/node-groups/?$")


class FaultProxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream):
        self.upstream = upstream
        self.no_capacity = set()  # instance types that fail to launch
        self.nodegroup_types = {}  # (cluster, nodegroup) -> instance types of the last create
        self.quotas = {}  # quota code -> value answered by GetServiceQuota
        self.requests = []  # (method, path, operation) seen, for request-shape assertions
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
        if target.endswith("GetServiceQuota"):
            return self._service_quota(json.loads(body or b"{}"))
        create = CREATE_PATH.match(self.path)
        if self.command == "POST" and create:
            data = json.loads(body or b"{}")
            self.server.nodegroup_types[(create.group(1), data.get("nodegroupName"))] = data.get("instanceTypes") or []
        conn = http.client.HTTPConnection(*self.server.upstream)
        headers = dict((k, v) for k, v in self.headers.items() if k.lower() != "host")
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        described = NODEGROUP_PATH.match(self.path)
        if self.command == "GET" and described and response.status == 200:
            payload = self._maybe_fail(described.group(1), described.group(2), payload)
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

    def _maybe_fail(self, cluster, nodegroup, payload):
        types = self.server.nodegroup_types.get((cluster, nodegroup)) or []
        if not types or types[0] not in self.server.no_capacity:
            return payload
        data = json.loads(payload)
        group = data["nodegroup"]
        if group.get("status") == "ACTIVE":
            group["status"] = "CREATE_FAILED"
            group["health"] = {"issues": [{
                "code": "AsgInstanceLaunchFailures",
                "message": "Could not launch On-Demand Instances. InsufficientInstanceCapacity - We currently do not "
                           "have sufficient %s capacity in the Availability Zone you requested (%sa). Launching EC2 "
                           "instance failed." % (types[0], REGION),
                "resourceIds": ["eks-%s-asg" % nodegroup]}]}
        return json.dumps(data).encode()

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
