"""Shared fixtures for the unit tests (ansible-test units layout, run with plain pytest).

Tests that touch the local provider use real podman and the lab node image built by
scripts/build-lab-images.sh; nothing is mocked between our code and podman.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The collection is importable as ansible_collections.llmops.platform through the checkout's link.
sys.path.insert(0, str(ROOT / ".collections"))
os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "lab" / "containers.conf"))

NODE_IMAGE = os.environ.get("LLMOPS_NODE_IMAGE", "localhost/llmops/debian-systemd:bookworm")


def _podman_ready():
    if not shutil.which("podman"):
        return "podman is not installed (scripts/bootstrap.sh installs it)"
    if subprocess.run(["podman", "image", "exists", NODE_IMAGE], check=False).returncode != 0:
        return "lab image %s is missing (scripts/build-lab-images.sh builds it)" % NODE_IMAGE
    return None


@pytest.fixture(scope="session")
def node_image():
    problem = _podman_ready()
    if problem:
        # Fail, not skip: these tests are the only proof the local provider works.
        pytest.fail(problem)
    return NODE_IMAGE


@pytest.fixture
def cluster_name(node_image):
    """A unique cluster name; whatever the test leaves behind is removed afterwards."""
    name = "ut-%s" % uuid.uuid4().hex[:8]
    yield name
    for line in subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter",
                                "label=llmops.cluster=%s" % name], capture_output=True, text=True, check=True).stdout.split():
        subprocess.run(["podman", "rm", "-f", "-t", "0", line], capture_output=True, check=False)
    subprocess.run(["podman", "network", "rm", "-f", "%s-net" % name], capture_output=True, check=False)


class ModuleResult(dict):
    @property
    def failed(self):
        return bool(self.get("failed"))


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Run a module's main() in-process with real arguments; return its JSON result."""
    from ansible.module_utils import _internal
    from ansible.module_utils.testing import patch_module_args

    # Once any test module imports controller code (ansible.template, ...), ansible-core marks the process
    # as the controller and module warnings go to the display instead of the result. A module runs as a
    # module: on a target, never in the controller.
    monkeypatch.setattr(_internal, "is_controller", False)

    def run(main, args, check_mode=False, diff=False):
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        with patch_module_args(args):
            with pytest.raises(SystemExit):
                main()
        out = capsys.readouterr().out
        return ModuleResult(json.loads(out))

    return run


@pytest.fixture(scope="session")
def aws_backend():
    """moto in server mode on loopback (plus a fault proxy), shared by the AWS provider and S3 tests."""
    from aws_backend import AwsBackend

    backend = AwsBackend()
    yield backend
    backend.close()
