#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_catalog
short_description: List, verify and prune backup sets, and pick the restore point for a time
version_added: 0.1.0
description:
  - Works on the backup sets written by M(llmops.platform.model_artifact) and the backup playbooks (each
    set is an encrypted, content-addressed version of a named artifact, for example V(prometheus),
    V(grafana), V(models-llama)).
  - O(mode=list) returns every set with its time, size, checksum, source and whether it is good.
  - O(mode=prune) applies a retention policy (keep last N, daily, weekly, monthly) and deletes the rest,
    but never the newest good set, even when every newer set is corrupt; sets newer than it are kept too.
  - O(mode=select) returns the restore point for O(point_in_time), the newest good set at or before it.
  - Why this module exists; no collection catalogues encrypted backup sets across object stores with one
    retention and point-in-time policy.
author:
  - llmops.platform maintainers (@llmops)
extends_documentation_fragment:
  - llmops.platform.storage
attributes:
  check_mode:
    support: full
    description: O(mode=prune) reports what it would delete and deletes nothing.
  diff_mode:
    support: none
    description: RV(deleted) lists what a prune removes.
options:
  mode:
    description: What to do.
    type: str
    choices: [list, prune, select]
    default: list
  names:
    description: Which artifacts / backup kinds to work on. Defaults to every one in the store.
    type: list
    elements: str
    default: []
  verify:
    description:
      - How a set is judged good. V(quick) checks the manifest's authentication tag and that every blob is
        present; V(full) decrypts every byte and checks its SHA-256. V(none) trusts the manifests.
      - Defaults to V(full) for O(mode=prune) and O(mode=select), V(quick) for O(mode=list).
    type: str
    choices: [none, quick, full]
  retention:
    description: The policy for O(mode=prune); at least one value above 0.
    type: dict
    suboptions:
      keep_last:
        description: Keep the newest N good sets.
        type: int
      keep_daily:
        description: Keep the newest good set of each of the last N days that have one.
        type: int
      keep_weekly:
        description: Keep the newest good set of each of the last N ISO weeks that have one.
        type: int
      keep_monthly:
        description: Keep the newest good set of each of the last N months that have one.
        type: int
  point_in_time:
    description: ISO 8601 time for O(mode=select), for example V(2026-11-20T03:00:00Z).
    type: str
"""

EXAMPLES = r"""
- name: Nightly prune of the lab's backups
  llmops.platform.backup_catalog:
    mode: prune
    store: {type: local, path: /srv/llmops-backups}
    encryption: {key_file: /etc/llmops/keys/backup.key}
    retention: {keep_last: 3, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}

- name: What do we restore to get back to Tuesday 03:00?
  llmops.platform.backup_catalog:
    mode: select
    names: [prometheus]
    point_in_time: "2026-11-17T03:00:00Z"
    store: {type: s3, bucket: acme-llm-backups, region: eu-west-1}
    encryption: {kms_key_id: alias/llmops-backups}
  register: restore_point
"""

RETURN = r"""
sets:
  description: Every set looked at, newest first per name.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: prometheus, version: 20261122T020000Z, created: "2026-11-22T02:00:03.120000Z", size: 73400320,
       files: 12, checksum: 9f86d08..., source: llmops-lab-monitoring-1, good: true, status: verified}
deleted:
  description: Sets a prune deleted (or would delete in check mode), as name/version.
  returned: when mode is prune
  type: list
  elements: str
selected:
  description: The restore point per name for O(point_in_time); null for a name with none.
  returned: when mode is select
  type: dict
"""


from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils import catalog, retention
from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository, artifact_names
from ansible_collections.llmops.platform.plugins.module_utils.stores import open_store
from ansible_collections.llmops.platform.plugins.module_utils.storage_args import (
    ENCRYPTION_OPTION, STORE_OPTION, key_wrapper)

ARGUMENT_SPEC = dict(
    mode=dict(type="str", default="list", choices=["list", "prune", "select"]),
    names=dict(type="list", elements="str", default=[]),
    verify=dict(type="str", choices=["none", "quick", "full"]),
    retention=dict(type="dict", options=dict(keep_last=dict(type="int"), keep_daily=dict(type="int"),
                                             keep_weekly=dict(type="int"), keep_monthly=dict(type="int"))),
    point_in_time=dict(type="str"),
    store=STORE_OPTION,
    encryption=ENCRYPTION_OPTION,
)

REQUIRED_IF = [("mode", "prune", ["retention"]), ("mode", "select", ["point_in_time"])]


def run(module):
    params = module.params
    mode = params["mode"]
    depth = params["verify"] or ("quick" if mode == "list" else "full")
    result = {"changed": False, "sets": []}
    moment = None
    # Values are checked before any store is read.
    if mode == "prune":
        retention.check_policy(params["retention"])
        result["deleted"] = []
    elif mode == "select":
        moment = retention.parse_time(params["point_in_time"])
        result["selected"] = {}
    store = open_store(params["store"])
    wrapper = key_wrapper(params)
    for name in params["names"] or artifact_names(store):
        repo = ArtifactRepository(store, name, wrapper)
        sets = catalog.describe_sets(repo, depth)
        result["sets"].extend(sets)
        if mode == "prune":
            deleted = catalog.prune(repo, sets, params["retention"], check_mode=module.check_mode)
            result["deleted"].extend("%s/%s" % (name, version) for version in deleted)
            result["changed"] = result["changed"] or bool(deleted)
        elif mode == "select":
            result["selected"][name] = catalog.select(sets, moment)
    return result


def main():
    run_module(ARGUMENT_SPEC, run, required_if=REQUIRED_IF)


if __name__ == "__main__":
    main()
