# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Content-addressed, encrypted, versioned model artifacts in object storage.

Layout under `<name>/` in the store:
    datakey.json              the artifact's data key, wrapped (key file or KMS); created on first push
    blobs/<sha256>            each distinct file content, encrypted (envelope.py), named by its plaintext SHA-256
    manifests/<version>.json  files (path, size, sha256, mode), authenticated with an HMAC under the data key

Blobs are written before the manifest and each object appears whole or not at all, so an interrupted
push leaves no manifest and the next push uploads only what is missing. A pull decrypts and checks
every byte into a staging directory next to the destination and swaps it in only when all of it
verified, so a corrupt artifact or a wrong key never replaces a working model.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import shutil
import tempfile

from ansible_collections.llmops.platform.plugins.module_utils import envelope
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError

FORMAT = 1


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def scan(directory):
    """Regular files under `directory`: [{path, size, sha256, mode}] sorted by path."""
    if not os.path.isdir(directory):
        raise SpecError("path", "%s is not a directory" % directory)
    files = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(root, name)
            if os.path.islink(full) or not os.path.isfile(full):
                raise SpecError("path", "%s is not a regular file" % full, hint="artifacts hold regular files only")
            files.append({"path": os.path.relpath(full, directory).replace(os.sep, "/"),
                          "size": os.path.getsize(full), "sha256": sha256_file(full),
                          "mode": os.stat(full).st_mode & 0o777})
    return sorted(files, key=lambda f: f["path"])


def content_version(files):
    """The default version: a digest of the file list, so identical content gets the same version."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(("%s\0%s\0" % (f["path"], f["sha256"])).encode())
    return digest.hexdigest()[:16]


class ArtifactRepository(object):
    def __init__(self, store, name, wrapper):
        if not name or "/" in name or name.startswith("."):
            raise SpecError("name", "%r is not a valid artifact name" % (name,))
        self.store, self.name, self.wrapper = store, name, wrapper
        self._dek = None

    def _key(self, *parts):
        return "/".join((self.name,) + parts)

    # -- data key ------------------------------------------------------------------------------------
    def data_key(self, create=False):
        if self._dek is None:
            try:
                record = json.loads(self.store.get_bytes(self._key("datakey.json")))
            except ProviderError as exc:
                if exc.code != "NotFound" or not create:
                    raise
                dek = envelope.new_data_key()
                self.store.put_bytes(self._key("datakey.json"), json.dumps(self.wrapper.wrap(dek)).encode())
                self._dek = dek
                return dek
            self._dek = self.wrapper.unwrap(record)
        return self._dek

    # -- manifests -----------------------------------------------------------------------------------
    def _sealed(self, manifest):
        body = dict((k, v) for k, v in manifest.items() if k != "mac")
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def read_manifest(self, version):
        try:
            manifest = json.loads(self.store.get_bytes(self._key("manifests", version + ".json")))
        except ValueError:
            raise envelope.IntegrityError("manifest %s of %s is not valid JSON (corrupt)" % (version, self.name))
        if manifest.get("mac") != envelope.mac(self.data_key(), self._sealed(manifest)):
            raise envelope.IntegrityError("manifest %s of %s failed authentication (tampered or corrupt)" % (version, self.name))
        return manifest

    def versions(self):
        """[(version, created)] sorted oldest first, read from the manifests' own timestamps."""
        found = []
        keys = self.store.list(self._key("manifests") + "/")
        if keys:
            self.data_key()  # a wrong key is the caller's error, not a reason to skip every manifest
        for key in keys:
            version = key.rsplit("/", 1)[-1][:-len(".json")]
            try:
                found.append((version, self.read_manifest(version)["created"]))
            except envelope.IntegrityError:
                continue  # a corrupt manifest is never a candidate for "latest"
        return sorted(found, key=lambda item: (item[1], item[0]))

    def resolve(self, version):
        if version and version != "latest":
            return version
        found = self.versions()
        if not found:
            raise ProviderError("artifact %s has no verified version in %s" % (self.name, self.store.describe()), code="NotFound")
        return found[-1][0]

    # -- push ----------------------------------------------------------------------------------------
    def push(self, directory, version=None, check_mode=False, metadata=None, created=None):
        """Upload `directory` as `version`. `metadata` (e.g. kind and source of a backup set) is
        stored in the authenticated manifest; `created` (aware datetime) is the time the content
        represents, for a backup the moment of its snapshot, by default now."""
        files = scan(directory)
        version = version or content_version(files)
        existing = None
        if self.store.size(self._key("manifests", version + ".json")) is not None:
            existing = self.read_manifest(version)
            if [(f["path"], f["sha256"]) for f in existing["files"]] != [(f["path"], f["sha256"]) for f in files]:
                raise SpecError("version", "version %s of %s already exists with different content" % (version, self.name),
                                hint="versions are immutable; push under a new version (or leave version unset)")
        missing = {}
        for f in files:
            if self.store.size(self._key("blobs", f["sha256"])) is None:
                missing[f["sha256"]] = f
        result = {"version": version, "uploaded": sorted(f["path"] for f in files if f["sha256"] in missing),
                  "skipped": sorted(f["path"] for f in files if f["sha256"] not in missing),
                  "blobs_uploaded": len(missing),
                  "changed": bool(missing) or existing is None}
        if check_mode or not result["changed"]:
            return result
        dek = self.data_key(create=True)
        tmpdir = tempfile.mkdtemp(prefix="llmops-push-")
        try:
            for sha, f in sorted(missing.items()):
                sealed = os.path.join(tmpdir, sha)
                envelope.encrypt_file(dek, sha, os.path.join(directory, f["path"]), sealed)
                self.store.put_file(self._key("blobs", sha), sealed)
                os.unlink(sealed)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        if existing is None:
            manifest = {"format": FORMAT, "name": self.name, "version": version, "files": files,
                        "total_size": sum(f["size"] for f in files),
                        "created": (created or datetime.datetime.now(datetime.timezone.utc))
                        .astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "key_id": self.wrapper.id, "metadata": dict(metadata or {})}
            manifest["mac"] = envelope.mac(dek, self._sealed(manifest))
            self.store.put_bytes(self._key("manifests", version + ".json"), json.dumps(manifest, indent=1).encode())
        return result

    # -- catalogue -----------------------------------------------------------------------------------
    def manifest_keys(self):
        return self.store.list(self._key("manifests") + "/")

    def manifest_digest(self, version):
        """SHA-256 of the stored manifest bytes: the set's checksum in catalogues and reports."""
        return hashlib.sha256(self.store.get_bytes(self._key("manifests", version + ".json"))).hexdigest()

    def check(self, version, depth):
        """(good, reason) for one version. depth: quick = manifest authentic and every blob present with
        a plausible size; full = every byte decrypted and its SHA-256 checked."""
        try:
            manifest = self.read_manifest(version)
            if depth == "full":
                self.verify(version)
            else:
                for f in manifest["files"]:
                    size = self.store.size(self._key("blobs", f["sha256"]))
                    if size is None or size < f["size"]:
                        return False, "blob of %s missing or short" % f["path"]
        except envelope.IntegrityError as exc:
            return False, exc.message
        except ProviderError as exc:
            if exc.code == "NotFound":
                return False, exc.message
            raise
        return True, "verified" if depth == "full" else "manifest and blobs present"

    def delete(self, version):
        """Remove a version's manifest, then every blob no remaining manifest refers to."""
        self.store.delete(self._key("manifests", version + ".json"))
        referenced = set()
        for key in self.manifest_keys():
            try:
                manifest = json.loads(self.store.get_bytes(key))
            except ValueError:
                return  # an unreadable manifest might need any blob: collect nothing this time
            referenced.update(f["sha256"] for f in manifest.get("files", []))
        for key in self.store.list(self._key("blobs") + "/"):
            if key.rsplit("/", 1)[-1] not in referenced:
                self.store.delete(key)

    # -- replicate -----------------------------------------------------------------------------------
    def replicate(self, target, versions=None, check_mode=False):
        """Copy versions (default: every good one) to the repository `target` (another store, region or
        cloud), ciphertext as is, then verify each copied version there byte for byte.

        Objects go in dependency order (data key, blobs, manifest last), so an interrupted copy never
        leaves a manifest whose blobs are missing, and a rerun copies only what is missing."""
        wanted = versions or [v for v, _created in self.versions()]
        copied = []
        for version in wanted:
            manifest_key = self._key("manifests", version + ".json")
            manifest = self.read_manifest(version)
            keys = [self._key("datakey.json")] + sorted(set(self._key("blobs", f["sha256"]) for f in manifest["files"]))
            missing = [k for k in keys + [manifest_key] if target.store.size(k) is None]
            if not missing:
                continue
            copied.append(version)
            if check_mode:
                continue
            scratch = tempfile.mkdtemp(prefix="llmops-replicate-")
            try:
                for key in missing[:-1] if missing[-1] == manifest_key else missing:
                    local = os.path.join(scratch, "object")
                    self.store.get_file(key, local)
                    target.store.put_file(key, local)
                # Check the copy byte for byte before publishing its manifest: a corrupt source or a
                # damaged transfer must never become a version at the target.
                check = os.path.join(scratch, "check")
                os.mkdir(check)
                target._fetch_verified(manifest, check)  # pylint: disable=protected-access
                target.store.put_bytes(manifest_key, self.store.get_bytes(manifest_key))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return {"changed": bool(copied), "replicated": copied, "versions": wanted}

    # -- verify and pull -----------------------------------------------------------------------------
    def _fetch_verified(self, manifest, target_dir):
        dek = self.data_key()
        for f in manifest["files"]:
            sealed = os.path.join(target_dir, ".sealed")
            plain = os.path.join(target_dir, f["path"])
            os.makedirs(os.path.dirname(plain), exist_ok=True)
            self.store.get_file(self._key("blobs", f["sha256"]), sealed)
            envelope.decrypt_file(dek, f["sha256"], sealed, plain, f["sha256"])
            os.chmod(plain, f.get("mode", 0o644))
            os.unlink(sealed)

    def verify(self, version=None):
        """Download and check every byte of a version; raises IntegrityError on the first bad file."""
        manifest = self.read_manifest(self.resolve(version))
        scratch = tempfile.mkdtemp(prefix="llmops-verify-")
        try:
            self._fetch_verified(manifest, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {"version": manifest["version"], "files": len(manifest["files"]), "total_size": manifest["total_size"]}

    def pull(self, directory, version=None, check_mode=False):
        manifest = self.read_manifest(self.resolve(version))
        wanted = [(f["path"], f["sha256"]) for f in manifest["files"]]
        if os.path.isdir(directory):
            try:
                have = [(f["path"], f["sha256"]) for f in scan(directory)]
            except SpecError:
                have = None
            if have == wanted:
                return {"version": manifest["version"], "changed": False}
        if check_mode:
            return {"version": manifest["version"], "changed": True}
        parent = os.path.dirname(os.path.abspath(directory))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".%s.incoming-" % os.path.basename(directory), dir=parent)
        try:
            self._fetch_verified(manifest, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        os.chmod(staging, 0o755)
        previous = None
        if os.path.exists(directory):
            previous = tempfile.mkdtemp(prefix=".%s.previous-" % os.path.basename(directory), dir=parent)
            os.rmdir(previous)
            os.rename(directory, previous)
        os.rename(staging, directory)
        if previous:
            shutil.rmtree(previous, ignore_errors=True)
        return {"version": manifest["version"], "changed": True}


def artifact_names(store):
    """Every artifact (or backup kind) in a store: the prefixes that hold manifests."""
    names = set()
    for key in store.list(""):
        parts = key.split("/")
        if len(parts) == 3 and parts[1] == "manifests":
            names.add(parts[0])
    return sorted(names)
