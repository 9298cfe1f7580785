"""Run INSIDE the execution environment: every plugin of llmops.platform imports, with every SDK it needs.

Imports each Python file under the installed collection's plugins/ through ansible-core's collection
loader, as a job would, and then requires:
- every module-level `HAS_<X>` flag (our guarded SDK imports) to be True: a guard would otherwise hide a
  missing SDK until a task needs it;
- the SDKs themselves (cloud, Kubernetes, crypto) and the import guards of the collections we call
  (amazon.aws, kubernetes.core, google.cloud, community.crypto) to succeed.
Prints one line per failure and a summary; exits 1 on any failure.

  python3 check_imports.py [--block MODULE ...]   (--block hides a top-level module, to prove a missing SDK fails)
  python3 check_imports.py --versions             (prints the versions inside the image as JSON, for docs/awx.md)
"""
import importlib
import importlib.metadata
import json
import pathlib
import sys

COLLECTIONS = pathlib.Path("/usr/share/ansible/collections")
ROOT = COLLECTIONS / "ansible_collections" / "llmops" / "platform"

# Imported directly: what our module_utils and the collections' modules and inventory plugins need.
SDKS = ["boto3", "botocore", "google.auth", "google.auth.transport.requests", "google.oauth2.service_account",
        "requests", "google.cloud.storage", "azure.storage.blob", "azure.identity", "azure.mgmt.containerservice",
        "azure.mgmt.compute", "azure.mgmt.network",
        "kubernetes.client", "kubernetes.dynamic", "kubernetes.config", "cryptography.hazmat.primitives.ciphers.aead",
        "cryptography.x509", "netaddr", "yaml", "jinja2"]
# (module, name) of the dependency collections' own import guards: set (true) only when their SDK imported.
# kubernetes.core has no flag: its client module defines LazyDiscoverer only when kubernetes imports.
GUARDS = [("ansible_collections.amazon.aws.plugins.module_utils.botocore", "HAS_BOTO3"),
          ("ansible_collections.kubernetes.core.plugins.module_utils.k8s.client", "LazyDiscoverer"),
          ("ansible_collections.google.cloud.plugins.module_utils.gcp_utils", "HAS_GOOGLE_LIBRARIES"),
          ("ansible_collections.community.crypto.plugins.module_utils._crypto.basic", "HAS_CRYPTOGRAPHY")]
VERSIONS = ["ansible-core", "ansible-runner", "boto3", "botocore", "google-auth", "google-cloud-storage", "requests",
            "azure-storage-blob", "azure-identity",
            "azure-mgmt-containerservice", "azure-mgmt-compute", "azure-mgmt-network", "kubernetes",
            "cryptography", "netaddr", "PyYAML", "Jinja2"]


class _Block:
    """A meta path finder that makes the named top-level modules unimportable."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ImportError("blocked for the test: %s" % fullname)
        return None


def _load_collections():
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    _AnsibleCollectionFinder(paths=[str(COLLECTIONS)], scan_sys_paths=False)._install()


def versions():
    out = {"python": sys.version.split()[0]}
    out.update({name: importlib.metadata.version(name) for name in VERSIONS})
    collections = {}
    for manifest in sorted(COLLECTIONS.glob("ansible_collections/*/*/MANIFEST.json")):
        info = json.loads(manifest.read_text())["collection_info"]
        collections["%s.%s" % (info["namespace"], info["name"])] = info["version"]
    out["collections"] = collections
    out["python_packages"] = len(list(importlib.metadata.distributions()))
    print(json.dumps(out, indent=2))


def main(argv):
    if argv[:1] == ["--versions"]:
        versions()
        return 0
    blocked = argv[1:] if argv[:1] == ["--block"] else []
    if blocked:
        sys.meta_path.insert(0, _Block(blocked))
    _load_collections()
    failures, count = [], 0
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if rel.name == "__init__":
            rel = rel.parent
        name = "ansible_collections.llmops.platform." + ".".join(rel.parts)
        count += 1
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # pylint: disable=broad-except  # report every failure, not the first
            failures.append("%s: %s: %s" % (name, type(exc).__name__, exc))
            continue
        for flag in sorted(a for a in vars(module) if a.startswith("HAS_")):
            if getattr(module, flag) is not True:
                failures.append("%s: %s is %r (an SDK it guards did not import)" % (name, flag, getattr(module, flag)))
    for name in SDKS:
        try:
            importlib.import_module(name)
        except Exception as exc:  # pylint: disable=broad-except
            failures.append("%s: %s: %s" % (name, type(exc).__name__, exc))
    for name, flag in GUARDS:
        try:
            value = getattr(importlib.import_module(name), flag, None)
        except Exception as exc:  # pylint: disable=broad-except
            failures.append("%s: %s: %s" % (name, type(exc).__name__, exc))
            continue
        if not value:
            failures.append("%s.%s is %r (the collection's SDK did not import)" % (name, flag, value))
    for line in failures:
        print("FAIL " + line)
    print("imported %d plugin files of llmops.platform, %d SDK modules, %d collection guards: %d failure(s)"
          % (count, len(SDKS), len(GUARDS), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
