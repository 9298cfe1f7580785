"""Write a byte-for-byte reproducible tar.gz from several files and folders and print its sha256 (JSON).

Run by roles/node_boot_bundle with the controller's Python, so it works wherever ansible-playbook does
(GNU tar's --sort/--mtime flags are missing from BSD tar on macOS controllers).

    python reproducible_tar.py OUT ARCNAME=SOURCE [ARCNAME=SOURCE ...]    (SOURCE: a file or a folder)

Reproducible means: entries in sorted order, every mtime fixed, owner root with no user or group names,
modes normalised to 0755/0644 (the umask of whoever built it does not leak in), no __pycache__ or .pyc,
and a gzip header without a name or time. So the hash, and the S3 key named after it, change only when
the content does.
"""
import gzip
import hashlib
import json
import os
import sys
import tarfile

MTIME = 0
SKIPPED_DIRS = ("__pycache__", ".pytest_cache")


def entries(arcname, source):
    """(arcname, path) pairs for `source` (a file, or a folder and everything under it)."""
    found = [(arcname, source)]
    if not os.path.isdir(source):
        return found
    for top, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        rel = os.path.relpath(top, source)
        for name in dirs + [f for f in files if not f.endswith((".pyc", ".pyo"))]:
            found.append((os.path.normpath(os.path.join(arcname, rel, name)), os.path.join(top, name)))
    return found


def normalised(info, path):
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if info.isdir():
        info.mode = 0o755
    elif info.isfile():
        info.mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
    return info


def write(out, mapping):
    items, parents = [], set()
    for arcname, source in mapping:
        if not os.path.exists(source):
            raise SystemExit("reproducible_tar: %s does not exist (for %s)" % (source, arcname))
        items.extend(entries(arcname, source))
        # The folders above each source get entries of their own, so extraction makes them 0755 too.
        parent = os.path.dirname(arcname)
        while parent:
            parents.add(parent)
            parent = os.path.dirname(parent)
    names = [item[0] for item in items]
    if len(names) != len(set(names)):
        raise SystemExit("reproducible_tar: two sources map to the same name in the archive")
    items = sorted(items + [(name, None) for name in parents - set(names)])
    tmp = out + ".part"
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=MTIME, compresslevel=9) as gz:
            # GNU format: no PAX headers, which would carry access and change times.
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for name, path in items:
                    if path is None:
                        info = tarfile.TarInfo(name)
                        info.type = tarfile.DIRTYPE
                        info = normalised(info, path)
                    else:
                        info = normalised(tar.gettarinfo(path, arcname=name), path)
                    if info.issym() and os.path.isabs(info.linkname):
                        raise SystemExit("reproducible_tar: %s links outside the bundle (%s)" % (path, info.linkname))
                    if info.isfile():
                        with open(path, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    os.replace(tmp, out)
    digest = hashlib.sha256()
    with open(out, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": out, "sha256": digest.hexdigest(), "size": os.path.getsize(out), "entries": len(items)}


def main(argv):
    if len(argv) < 3 or not all("=" in arg for arg in argv[2:]):
        raise SystemExit(__doc__)
    mapping = [tuple(arg.split("=", 1)) for arg in argv[2:]]
    print(json.dumps(write(argv[1], mapping)))


if __name__ == "__main__":
    main(sys.argv)
