# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup catalogue: the sets of one named artifact described and judged, pruned by a retention
policy, and the restore point for a time.

Works on an ArtifactRepository; the rules themselves (what to keep, which set a time selects) are
retention.py's, over the records built here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.llmops.platform.plugins.module_utils import retention
from ansible_collections.llmops.platform.plugins.module_utils.envelope import WrongKeyError
from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError

# What a set without a readable manifest is dated: older than any real set, so it never counts as newest.
UNKNOWN_TIME = "1970-01-01T00:00:00Z"


def describe_sets(repo, depth):
    """Every set of `repo`, newest first: time, size, checksum, source and whether it is good.

    depth: none (trust the manifests), quick or full (see ArtifactRepository.check). A set that cannot
    be read is listed as bad with the reason; a wrong key fails the whole call instead, because with it
    every set would look corrupt and a prune would delete them all."""
    sets = []
    for key in repo.manifest_keys():
        version = key.rsplit("/", 1)[-1][:-len(".json")]
        entry = {"name": repo.name, "version": version}
        try:
            manifest = repo.read_manifest(version)
            entry.update(created=manifest["created"], size=manifest["total_size"], files=len(manifest["files"]),
                         checksum=repo.manifest_digest(version), source=manifest.get("metadata", {}).get("source"))
            good, status = (True, "not verified") if depth == "none" else repo.check(version, depth)
        except WrongKeyError:
            raise
        except LlmopsError as exc:
            good, status = False, exc.message
        entry.update(good=good, status=status)
        sets.append(entry)
    return sorted(sets, key=lambda e: e.get("created") or "", reverse=True)


def _records(sets):
    return [retention.Record(s["version"], retention.parse_time(s.get("created") or UNKNOWN_TIME), s["good"])
            for s in sets]


def prune(repo, sets, policy, check_mode=False):
    """Delete the sets of `repo` that `policy` does not keep (none in check mode); return their versions.

    `sets` are describe_sets(repo, ...)'s, so only sets judged good count toward the policy."""
    _keep, delete = retention.select_keep(_records(sets), policy)
    if not check_mode:
        for version in delete:
            repo.delete(version)
    return delete


def select(sets, moment):
    """The entry of `sets` to restore for `moment` (the newest good set at or before it), or None."""
    chosen = retention.select_point_in_time(_records(sets), moment)
    return next((s for s in sets if chosen and s["version"] == chosen.id), None)
