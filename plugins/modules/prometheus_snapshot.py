#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: prometheus_snapshot
short_description: Snapshot Prometheus' TSDB through its admin API and store it as an encrypted backup set
version_added: 0.1.0
description:
  - Asks Prometheus for a TSDB snapshot (C(POST /api/v1/admin/tsdb/snapshot)), which hard-links the current
    blocks under C(<data_dir>/snapshots/<name>) at no extra disk cost, then stores that directory as a
    version of the backup set O(name) (see M(llmops.platform.model_artifact) for the format). TSDB blocks
    are immutable, so consecutive snapshots share most blobs and only new blocks are uploaded.
  - The local snapshot directory is removed afterwards unless O(keep_local=true).
  - Prometheus must run with C(--web.enable-admin-api) (in the collection's C(prometheus) role, add it to C(prometheus_extra_args)).
  - Why this module exists; no collection wraps the TSDB snapshot API, and a snapshot is only a backup once
    it has left the host, verified.
author:
  - llmops.platform maintainers (@llmops)
extends_documentation_fragment:
  - llmops.platform.storage
attributes:
  check_mode:
    support: full
    description: Checks that the admin API answers and reports that a snapshot would be taken.
  diff_mode:
    support: none
    description: A snapshot is always a new backup set.
options:
  url:
    description: Base URL of Prometheus as seen from the host the module runs on.
    type: str
    default: http://127.0.0.1:9090
  data_dir:
    description: Prometheus' storage directory (C(--storage.tsdb.path)); Debian's package uses V(/var/lib/prometheus/metrics2).
    type: path
    default: /var/lib/prometheus/metrics2
  skip_head:
    description: Leave out the in-memory head block (the last ~2 hours); smaller and faster, at the cost of RPO.
    type: bool
    default: false
  name:
    description: Backup set name in the store.
    type: str
    default: prometheus
  source:
    description: What the set came from, recorded in its manifest. Defaults to the host name.
    type: str
  keep_local:
    description: Keep the snapshot directory on the Prometheus host after it was stored.
    type: bool
    default: false
  bearer_token:
    description: Token for a Prometheus behind an authenticating proxy.
    type: str
  timeout:
    description: Seconds to wait for Prometheus to answer the snapshot request.
    type: int
    default: 300
"""

EXAMPLES = r"""
- name: Nightly Prometheus backup to S3
  llmops.platform.prometheus_snapshot:
    store: {type: s3, bucket: acme-llm-backups, prefix: prod, region: eu-west-1}
    encryption: {kms_key_id: alias/llmops-backups}
  register: snapshot

- name: Report it
  ansible.builtin.debug:
    msg: "stored {{ snapshot.version }}: {{ snapshot.uploaded | length }} new files, {{ snapshot.skipped | length }} shared"
"""

RETURN = r"""
version:
  description: The snapshot name, which is also the backup set's version.
  returned: changed
  type: str
  sample: 20261122T020000Z-2be650b6d019eb54
uploaded:
  description: Snapshot files whose content was uploaded.
  returned: changed
  type: list
  elements: str
skipped:
  description: Snapshot files whose content the store already had (blocks shared with earlier snapshots).
  returned: changed
  type: list
  elements: str
"""

import datetime
import shutil
import socket

from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository
from ansible_collections.llmops.platform.plugins.module_utils.stores import open_store
from ansible_collections.llmops.platform.plugins.module_utils.prometheus_api import PrometheusApi
from ansible_collections.llmops.platform.plugins.module_utils.storage_args import (
    ENCRYPTION_OPTION, STORE_OPTION, key_wrapper)

ARGUMENT_SPEC = dict(
    url=dict(type="str", default="http://127.0.0.1:9090"),
    data_dir=dict(type="path", default="/var/lib/prometheus/metrics2"),
    skip_head=dict(type="bool", default=False),
    name=dict(type="str", default="prometheus"),
    source=dict(type="str"),
    keep_local=dict(type="bool", default=False),
    bearer_token=dict(type="str", no_log=True),
    timeout=dict(type="int", default=300),
    store=STORE_OPTION,
    encryption=ENCRYPTION_OPTION,
)


def run(module):
    params = module.params
    repo = ArtifactRepository(open_store(params["store"]), params["name"], key_wrapper(params))
    prometheus = PrometheusApi(params["url"], params["bearer_token"], params["timeout"])
    if module.check_mode:
        prometheus.runtime_info()
        return {"changed": True}
    taken = datetime.datetime.now(datetime.timezone.utc)
    snapshot = prometheus.snapshot(params["skip_head"])
    directory = "%s/snapshots/%s" % (params["data_dir"].rstrip("/"), snapshot)
    try:
        pushed = repo.push(directory, version=snapshot, created=taken,
                           metadata={"kind": "prometheus", "source": params["source"] or socket.getfqdn(),
                                     "url": params["url"], "skip_head": params["skip_head"]})
    finally:
        if not params["keep_local"]:
            shutil.rmtree(directory, ignore_errors=True)
    pushed["changed"] = True
    return pushed


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
