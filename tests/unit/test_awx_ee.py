"""execution-environment.yml: `ansible-builder create` (offline) and the build context it generates.

The image itself is built by scripts/build-ee.sh and checked by test_awx_ee_image.py and
test_awx_ee_credentials.py (which need it built) and by the e2e stage, which runs the lab in it.
"""
import pathlib
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[2]
EE = ROOT / "execution-environment.yml"


def _pins(lines):
    """{normalised name: Requirement} of the requirement lines (comments, blanks and -r lines skipped)."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            out[req.name.lower().replace("_", "-")] = req
    return out


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The collection artifact built as the docs say, then `ansible-builder create` into a temp dir."""
    tmp = tmp_path_factory.mktemp("ee")
    work = tmp / "checkout"
    # Build from a copy so the test neither needs nor touches the checkout's .build/.
    shutil.copytree(ROOT, work, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".collections", ".build", ".cache", ".git", "serving_image", "__pycache__", ".pytest_cache",
        "molecule", ".ansible"))
    subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(work / ".build" / "ee"),
                    str(work)], check=True, capture_output=True)
    run = subprocess.run(["ansible-builder", "create", "-f", str(work / EE.name), "-c", str(tmp / "context")],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "No matches" not in run.stdout + run.stderr, "the collection artifact was not picked up"
    return tmp / "context"


def test_definition_is_schema_3_and_names_no_registry():
    from ansible_builder.ee_schema import validate_schema

    definition = yaml.safe_load(EE.read_text())
    validate_schema(definition)
    assert definition["version"] == 3
    base = definition["images"]["base_image"]["name"]
    # A local tag: "localhost/" is podman's name for images that were never pulled from anywhere.
    assert base.startswith("localhost/"), base


def test_containerfile_has_the_base_image_argument(context):
    containerfile = (context / "Containerfile").read_text()
    assert re.search(r'^ARG EE_BASE_IMAGE="localhost/[^"]+"$', containerfile, re.M)
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert re.search(r'^ARG PKGMGR="[^"]+"$', containerfile, re.M), "PKGMGR must be overridable for RHEL bases"
    assert re.search(r'^ARG ANSIBLE_INSTALL_REFS="ansible-core==[\d.]+ ansible-runner==[\d.]+"$', containerfile, re.M)
    assert "USER 1000" in containerfile, "the EE must not run jobs as root"
    assert "install --offline --collections-path /usr/share/ansible/collections /build/collections/llmops-platform-" \
        in containerfile


def test_context_holds_the_collection_and_its_requirements(context):
    build = context / "_build"
    (artifact,) = (build / "collections").glob("llmops-platform-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names and "plugins/modules/gpu_cluster.py" in names
    assert "bindep.txt" in names, "the collection ships bindep.txt so other EEs pick up its system packages"
    assert not [n for n in names if n.startswith((".venv", "serving_image", ".build"))]
    assert yaml.safe_load((build / "requirements.yml").read_text()) == yaml.safe_load(
        (ROOT / "requirements.yml").read_text())
    bindep = (build / "bindep.txt").read_text()
    assert "openssh-client [platform:dpkg]" in bindep and "openssh-clients [platform:rpm]" in bindep


def test_python_requirements_cover_every_cloud_and_match_the_controller_pins(context):
    ee = _pins((context / "_build" / "requirements.txt").read_text().splitlines())
    for name in ("boto3", "google-auth", "azure-identity", "azure-mgmt-containerservice", "azure-mgmt-compute",
                 "kubernetes", "cryptography"):
        assert name in ee, "%s missing from the EE's python requirements" % name
    controller = _pins((ROOT / "requirements" / "controller.txt").read_text().splitlines())
    for name, req in controller.items():
        if name in ("ansible", "ansible-core"):
            continue  # the EE installs ansible-core (dependencies.ansible_core) and collections from Galaxy
        assert str(ee.get(name)) == str(req), "%s: EE has %s, requirements/controller.txt has %s" % (
            name, ee.get(name), req)
    core = yaml.safe_load(EE.read_text())["dependencies"]["ansible_core"]["package_pip"]
    assert core == str(controller["ansible-core"])
    # azure.azcollection's exact pins conflict with ours: its list is left out and the inventory plugin's
    # imports are listed in the definition instead.
    assert (context / "_build" / "exclude-collections.txt").read_text().split() == ["azure.azcollection"]
    assert {"azure-mgmt-network", "netaddr"} <= set(ee)
