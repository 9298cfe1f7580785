"""The built execution environment: every plugin of the collection imports inside it, with its SDKs.

Runs tests/ee/check_imports.py inside the image that scripts/build-ee.sh builds. The image takes minutes
to build from scratch, so this module runs only when LLMOPS_EE_CHECKS=1 says the image was just built
from this checkout; the e2e stage of scripts/test.sh builds it and runs this file that way, so CI always
runs it.
"""
import json
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("LLMOPS_EE_IMAGE", "localhost/llmops/platform-ee:0.1.0")

# Only against an image built from this checkout: the e2e stage sets LLMOPS_EE_CHECKS=1 right after
# scripts/build-ee.sh; an image left from an earlier checkout would test other code.
pytestmark = pytest.mark.skipif(
    os.environ.get("LLMOPS_EE_CHECKS") != "1" or not shutil.which("podman")
    or subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode != 0,
    reason="needs %s built from this checkout: scripts/build-ee.sh, then LLMOPS_EE_CHECKS=1" % IMAGE)


def _in_image(*args):
    return subprocess.run(["podman", "run", "--rm", "-v", "%s:/checks:ro" % (ROOT / "tests" / "ee"), IMAGE,
                           "python3", "/checks/check_imports.py"] + list(args),
                          capture_output=True, text=True, check=False)


def test_every_plugin_and_sdk_imports_in_the_image():
    run = _in_image()
    assert run.returncode == 0, run.stdout + run.stderr
    plugins = list((ROOT / "plugins").rglob("*.py"))
    # All of the checkout's plugin files are in the image's copy, and each one imported.
    assert "imported %d plugin files of llmops.platform" % len(plugins) in run.stdout, run.stdout
    assert "0 failure(s)" in run.stdout


def test_a_missing_sdk_fails_the_check():
    run = _in_image("--block", "boto3", "kubernetes")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "stores.s3: HAS_BOTO3 is False" in run.stdout
    assert "amazon.aws.plugins.module_utils.botocore.HAS_BOTO3 is False" in run.stdout
    assert "kubernetes.core.plugins.module_utils.k8s.client.LazyDiscoverer is None" in run.stdout


def test_the_image_holds_the_pinned_versions_and_collections():
    run = _in_image("--versions")
    assert run.returncode == 0, run.stdout + run.stderr
    found = json.loads(run.stdout)
    definition = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    pins = [Requirement(line) for line in definition["dependencies"]["python"]]
    pins += [Requirement(definition["dependencies"][k]["package_pip"]) for k in ("ansible_core", "ansible_runner")]
    for req in pins:
        assert req.specifier.contains(found[req.name]), "%s: the image has %s" % (req, found[req.name])
    wanted = {c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    assert wanted | {"llmops.platform"} <= set(found["collections"])
