# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local lab: a cluster is a podman network, a node is a systemd container on it.

Each node container is labelled with its cluster, pool and index, plus the pool's spec as JSON, so the
whole state can be read back from podman alone (no state file to lose or drift). Nodes are reached by
Ansible through the containers.podman.podman connection plugin, and found again by the
containers.podman.podman_containers inventory plugin via the same labels.

GPUs are simulated: a pool that asks for a GPU gets labels saying so, which is what the plays that
follow key on; no device is passed through.

Boot-time configuration (node_pools[].node_config.user_data, rendered by the node_boot_config role) is
the lab's version of a cloud's launch template: each node gets a cloud-init NoCloud seed (user-data,
meta-data with instance-id = node name) mounted at /var/lib/cloud/seed/nocloud/, plus the read-only
provider_options.boot_mounts (the collections the boot run uses), and a node is ready only once
cloud-init has finished.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess

from ansible_collections.llmops.platform.plugins.module_utils.cluster_spec import GpuSpec, Taint
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.providers.base import (
    ClusterProvider, ClusterState, Node, NodePoolState)
from ansible_collections.llmops.platform.plugins.module_utils.waiter import wait_for

LABEL_CLUSTER = "llmops.cluster"
LABEL_POOL = "llmops.pool"
LABEL_INDEX = "llmops.node-index"
LABEL_SPEC = "llmops.pool-spec"
LABEL_GPU_TYPE = "llmops.gpu-type"
LABEL_PROVIDER = "llmops.provider"
LABEL_BOOT = "llmops.boot"
SEED_MOUNT = "/var/lib/cloud/seed/nocloud"
CLOUD_INIT_LOG = "/var/log/cloud-init-output.log"

# systemd states in which a node can take Ansible work; "degraded" means some unit failed, which is
# the hardening and monitoring roles' business to report, not a reason to declare the node absent.
READY_STATES = ("running", "degraded")


class Podman(object):
    """Runs the podman CLI (the same interface containers.podman uses) and raises ProviderError on failure."""

    def __init__(self, executable="podman"):
        self.executable = executable

    def run(self, *args, **kwargs):
        check = kwargs.pop("check", True)
        try:
            proc = subprocess.run([self.executable] + list(args), capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ProviderError("cannot run %s: %s" % (self.executable, exc),
                                hint="install podman (apt-get install podman runc) or set provider_options.podman_executable")
        if check and proc.returncode != 0:
            raise ProviderError("podman %s failed: %s" % (" ".join(args[:2]), proc.stderr.strip() or proc.stdout.strip()),
                                code="exit %d" % proc.returncode)
        return proc

    def json(self, *args):
        out = self.run(*args).stdout.strip()
        return json.loads(out) if out else []


def _node_name(cluster, pool, index):
    return "%s-%s-%d" % (cluster, pool, index)


class LocalPodmanProvider(ClusterProvider):
    name = "local"
    # "status" lets a run start nodes that are stopped (e.g. after the host rebooted).
    # "node_config" replaces the pool's nodes, as a new launch template version rolls a node group.
    updatable_pool_fields = frozenset(["count", "status", "node_config"])
    #: what a pool label set records; other NodePoolSpec fields (instance types, disk, capacity type,
    #: autoscaling bounds) have no meaning on one machine and are accepted but not compared.
    reported_pool_fields = ("count", "status", "gpu", "labels", "taints", "image", "node_config")
    #: A lab node boots in seconds; 300 s also covers a first-boot configuration run on a slow machine.
    default_wait_timeout = 300

    def __init__(self, options=None, region=None):
        super(LocalPodmanProvider, self).__init__(options, region)
        self.podman = Podman(self.options.get("podman_executable") or "podman")

    # -- naming -----------------------------------------------------------------------------------
    def network_name(self, cluster):
        return self.options.get("network") or "%s-net" % cluster

    def seed_dir(self, cluster, node):
        """Host directory holding a node's NoCloud seed (provider_options.seed_dir, default under ~/.llmops)."""
        root = self.options.get("seed_dir") or os.path.join(os.path.expanduser("~"), ".llmops", cluster, "seeds")
        return os.path.join(root, node)

    # -- checks -----------------------------------------------------------------------------------
    def validate(self, spec):
        for i, pool in enumerate(spec.node_pools):
            where = "node_pools[%d].image" % i
            if not pool.image:
                raise SpecError(where, "is required by the local provider",
                                hint="name a local image, e.g. localhost/llmops/debian-systemd:bookworm "
                                     "(built by scripts/build-lab-images.sh)")
            if self.podman.run("image", "exists", pool.image, check=False).returncode != 0:
                raise SpecError(where, "image %r is not in local podman storage" % pool.image,
                                hint="build it first with scripts/build-lab-images.sh (no registry is used)")

    # -- reading state ----------------------------------------------------------------------------
    def _containers(self, cluster):
        return self.podman.json("ps", "--all", "--format", "json",
                                "--filter", "label=%s=%s" % (LABEL_CLUSTER, cluster))

    def get_cluster(self, name):
        network = self.network_name(name)
        if self.podman.run("network", "exists", network, check=False).returncode != 0:
            return None
        info = self.podman.json("network", "inspect", network)[0]
        state = ClusterState(name=name, status="running", region="local",
                             endpoint=None, ca_data=None)
        subnets = info.get("subnets") or []
        if subnets:
            state.endpoint = subnets[0].get("subnet")
        by_pool = {}
        for c in self._containers(name):
            by_pool.setdefault(c["Labels"][LABEL_POOL], []).append(c)
        for pool, members in sorted(by_pool.items()):
            members.sort(key=lambda c: int(c["Labels"].get(LABEL_INDEX, "0")))
            recorded = json.loads(members[0]["Labels"].get(LABEL_SPEC) or "{}")
            gpu = recorded.get("gpu")
            running = sum(1 for c in members if c.get("State") == "running")
            state.node_pools[pool] = NodePoolState(
                name=pool,
                status="running" if running == len(members) else "stopped",
                count=len(members),
                gpu=GpuSpec(**gpu) if gpu else None,
                labels=recorded.get("labels") or {},
                taints=[Taint(**t) for t in recorded.get("taints") or []],
                image=recorded.get("image"),
                node_config=recorded.get("node_config") or {},
            )
        if any(p.status != "running" for p in state.node_pools.values()):
            state.status = "stopped"
        return state

    def list_nodes(self, name):
        nodes = []
        for c in self._containers(name):
            cname = c["Names"][0]
            address = None
            nets = c.get("Networks") or []
            if nets:
                inspect = self.podman.json("container", "inspect", cname)[0]
                net = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
                address = (net.get(self.network_name(name)) or {}).get("IPAddress") or None
            nodes.append(Node(
                name=cname,
                pool=c["Labels"][LABEL_POOL],
                status=c.get("State", "unknown"),
                address=address,
                connection={"ansible_connection": "containers.podman.podman", "ansible_host": cname},
            ))
        return sorted(nodes, key=lambda n: n.name)

    # -- changing state ---------------------------------------------------------------------------
    def create_cluster(self, spec):
        args = ["network", "create", "--label", "%s=%s" % (LABEL_CLUSTER, spec.name),
                "--label", "%s=local" % LABEL_PROVIDER]
        if self.options.get("subnet"):
            args += ["--subnet", self.options["subnet"]]
        self.podman.run(*(args + [self.network_name(spec.name)]))

    def delete_cluster(self, name):
        # Stray containers (e.g. created by hand with our labels) would block the network removal.
        for c in self._containers(name):
            self._remove_node(name, c["Names"][0])
        self.podman.run("network", "rm", "--force", self.network_name(name), check=False)

    def create_node_pool(self, spec, pool):
        self._scale(spec, pool, 0, pool.count)

    def update_node_pool(self, spec, pool, changes):
        unsupported = set(changes) - self.updatable_pool_fields
        if unsupported:
            raise ProviderError("local provider cannot change %s in place" % ", ".join(sorted(unsupported)))
        if "node_config" in changes:
            # Nodes boot once from their seed: each is replaced (same name, new seed), one at a time.
            for c in self._containers(spec.name):
                if c["Labels"].get(LABEL_POOL) == pool.name:
                    self._remove_node(spec.name, c["Names"][0])
                    self._run_node(spec, pool, int(c["Labels"][LABEL_INDEX]))
        if "count" in changes:
            current, desired = changes["count"]
            self._scale(spec, pool, current, desired)
        if "status" in changes:
            for c in self._containers(spec.name):
                if c["Labels"].get(LABEL_POOL) == pool.name and c.get("State") != "running":
                    self.podman.run("start", c["Names"][0])

    def delete_node_pool(self, cluster_name, pool_name):
        for c in self._containers(cluster_name):
            if c["Labels"].get(LABEL_POOL) == pool_name:
                self._remove_node(cluster_name, c["Names"][0])

    def _scale(self, spec, pool, current, desired):
        indexes = sorted(int(c["Labels"][LABEL_INDEX]) for c in self._containers(spec.name)
                         if c["Labels"].get(LABEL_POOL) == pool.name)
        if desired > len(indexes):
            free = [i for i in range(1, desired + len(indexes) + 1) if i not in indexes]
            for index in free[:desired - len(indexes)]:
                self._run_node(spec, pool, index)
        else:
            # Scale in from the highest index, as a managed node group removes its newest nodes.
            for index in indexes[desired:][::-1]:
                self._remove_node(spec.name, _node_name(spec.name, pool.name, index))

    def _remove_node(self, cluster, name):
        self.podman.run("rm", "--force", "--time", "10", name)
        shutil.rmtree(self.seed_dir(cluster, name), ignore_errors=True)

    def _run_node(self, spec, pool, index):
        name = _node_name(spec.name, pool.name, index)
        recorded = {"image": pool.image, "labels": pool.labels,
                    "taints": [t.__dict__ for t in pool.taints],
                    "gpu": pool.gpu.__dict__ if pool.gpu else None,
                    "node_config": pool.node_config or {}}
        args = ["run", "--detach", "--name", name, "--hostname", name,
                "--network", self.network_name(spec.name), "--systemd", "always",
                "--label", "%s=%s" % (LABEL_CLUSTER, spec.name),
                "--label", "%s=%s" % (LABEL_POOL, pool.name),
                "--label", "%s=%d" % (LABEL_INDEX, index),
                "--label", "%s=%s" % (LABEL_SPEC, json.dumps(recorded, sort_keys=True))]
        if pool.gpu:
            args += ["--label", "%s=%s" % (LABEL_GPU_TYPE, pool.gpu.type)]
        if self.options.get("memory"):
            args += ["--memory", str(self.options["memory"])]
        if (pool.node_config or {}).get("user_data"):
            args += ["--label", "%s=cloud-init" % LABEL_BOOT,
                     "--volume", "%s:%s:ro" % (self._write_seed(spec.name, name, pool.node_config["user_data"]), SEED_MOUNT)]
            for mount in self.options.get("boot_mounts") or []:
                source, _sep, target = str(mount).partition(":")
                if not os.path.isabs(source) or not os.path.isabs(target) or not os.path.exists(source):
                    raise SpecError("provider_options.boot_mounts", "%r is not HOST_PATH:NODE_PATH with an existing "
                                    "absolute host path" % (mount,),
                                    hint="e.g. /path/to/collection:/opt/llmops/collections/ansible_collections/llmops/platform")
                args += ["--volume", "%s:%s:ro" % (source, target)]
        self.podman.run(*(args + [pool.image]))

    def _write_seed(self, cluster, node, user_data):
        """A NoCloud seed for one node; instance-id is the node name, so a replaced node boots afresh."""
        path = self.seed_dir(cluster, node)
        if not os.path.isdir(path):
            os.makedirs(path, 0o700)
        os.chmod(path, 0o700)
        for name, content in (("user-data", user_data),
                              ("meta-data", "instance-id: %s\nlocal-hostname: %s\n" % (node, node))):
            with open(os.path.join(path, name), "w") as handle:
                handle.write(content)
            os.chmod(os.path.join(path, name), 0o600)
        return path

    # -- waiting ----------------------------------------------------------------------------------
    def wait_for_cluster(self, name, state, timeout):
        if state == "absent":
            wait_for(lambda: (self.get_cluster(name) is None, "cluster still exists"),
                     "cluster %s to be deleted" % name, timeout, interval=1)
            return
        for node in self.list_nodes(name):
            wait_for(lambda node=node: self._node_ready(node.name),
                     "node %s to finish booting (systemd is-system-running: running or degraded; "
                     "cloud-init done where the node boots from a seed)" % node.name,
                     timeout, interval=2)

    def _node_ready(self, container):
        inspect = self.podman.json("container", "inspect", container)[0]
        state = inspect.get("State", {})
        if not state.get("Running"):
            return False, "container %s" % (state.get("Status") or "not running")
        if ((inspect.get("Config") or {}).get("Labels") or {}).get(LABEL_BOOT) == "cloud-init":
            proc = self.podman.run("exec", container, "cloud-init", "status", check=False)
            status = (proc.stdout or proc.stderr).strip() or "no answer"
            if proc.returncode in (126, 127) or "executable file not found" in status:
                raise ProviderError(
                    "node %s boots from node_config.user_data but its image has no cloud-init" % container,
                    code="no cloud-init",
                    hint="use the boot image localhost/llmops/debian-boot:bookworm (scripts/build-lab-images.sh)")
            if "error" in status:
                raise ProviderError(
                    "node %s: its first-boot configuration (cloud-init) failed: %s" % (container, status),
                    code="cloud-init error",
                    hint="read /var/log/cloud-init-output.log on the node (podman exec %s tail -50 %s)"
                         % (container, CLOUD_INIT_LOG))
            if "done" not in status:
                return False, "cloud-init %s" % status
        proc = self.podman.run("exec", container, "systemctl", "is-system-running", check=False)
        state = (proc.stdout or proc.stderr).strip() or "no answer"
        return state in READY_STATES, "systemd state: %s" % state
