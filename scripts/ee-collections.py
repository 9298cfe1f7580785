"""Pack the collections requirements.yml names, from the copies installed on this machine, as Galaxy artifacts.

Galaxy cannot be reached from here, but the `ansible` package in the virtualenv carries every collection
requirements.yml lists (site-packages/ansible_collections). scripts/build-ee.sh puts the tarballs this
writes into the execution environment's build context; the image then installs them offline and runs the
ordinary `ansible-galaxy collection install -r requirements.yml --offline`, which checks the versions
against requirements.yml's ranges.

A tarball holds the files of the collection's FILES.json (its published content, without the __pycache__
pip added) that the `ansible` package ships: that package leaves out each collection's tests and CI files,
so the packed FILES.json lists only the files present, each with its published checksum, and
ansible-galaxy verifies every one of them when it installs the tarball (a file that differs from the
published one fails the build). Dependencies
that a collection's MANIFEST.json declares are packed too. Tar entries have fixed owners and times, so the
same collection always gives the same bytes.

  python3 scripts/ee-collections.py OUTDIR        # writes OUTDIR/<ns>-<name>-<version>.tar.gz, prints one line each
"""
import gzip
import io
import json
import pathlib
import sys
import tarfile

import ansible_collections
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements

ROOT = pathlib.Path(__file__).resolve().parents[1]


def find(fqcn):
    """The installed directory of a collection, from the paths this Python imports collections from."""
    namespace, name = fqcn.split(".")
    for base in ansible_collections.__path__:
        path = pathlib.Path(base) / namespace / name
        if (path / "MANIFEST.json").is_file():
            return path
    sys.exit("%s is required (requirements.yml) but not installed here: install the `ansible` package "
             "(requirements/controller.txt) or build the EE where Galaxy is reachable" % fqcn)


def needed():
    """{fqcn: (directory, version)} for requirements.yml and what those collections depend on."""
    wanted = [(c["name"], c.get("version", "*")) for c in yaml.safe_load(
        (ROOT / "requirements.yml").read_text())["collections"]]
    found = {}
    while wanted:
        fqcn, spec = wanted.pop(0)
        path = find(fqcn)
        info = json.loads((path / "MANIFEST.json").read_text())["collection_info"]
        if not meets_requirements(info["version"], spec):
            sys.exit("%s %s is installed, requirements.yml (or a dependency) wants %s: change the `ansible` pin "
                     "or the range" % (fqcn, info["version"], spec))
        if fqcn not in found:
            found[fqcn] = (path, info["version"])
            wanted.extend((dep, dep_spec) for dep, dep_spec in (info.get("dependencies") or {}).items())
    return found


def pack(path, target):
    """A reproducible Galaxy artifact of the installed collection at path."""
    manifest = json.loads((path / "FILES.json").read_text())
    # Only what is here: the checksums stay the published ones.
    manifest["files"] = [f for f in manifest["files"] if f["name"] == "." or (path / f["name"]).exists()]
    files_json = json.dumps(manifest, indent=4, sort_keys=True).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("FILES.json")
        info.size, info.mode = len(files_json), 0o644
        tar.addfile(info, io.BytesIO(files_json))
        for name in ["MANIFEST.json"] + sorted(f["name"] for f in manifest["files"] if f["name"] != "."):
            info = tar.gettarinfo(str(path / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isfile():
                with open(path / name, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    tmp = target.with_suffix(".part")
    with open(tmp, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue())
    tmp.replace(target)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for fqcn, (path, version) in sorted(needed().items()):
        target = out / ("%s-%s.tar.gz" % (fqcn.replace(".", "-"), version))
        if not target.exists():
            pack(path, target)
        print("%s %s %s" % (fqcn, version, target.name))


if __name__ == "__main__":
    main()
