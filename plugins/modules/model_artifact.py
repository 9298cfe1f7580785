#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: model_artifact
short_description: Push, pull and verify encrypted, content-addressed model artifacts in object storage
version_added: 0.1.0
description:
  - Stores a model directory as a versioned artifact; a manifest with the SHA-256 of every file, and each
    distinct file content once, encrypted client-side with AES-256-GCM under a data key that is wrapped
    by a key file or an AWS KMS key.
  - O(mode=push) uploads only contents the store does not have yet, and writes the manifest last, so an
    interrupted push resumes where it stopped and a version exists only once all of it is stored.
  - O(mode=pull) decrypts and checks every byte into a staging directory beside O(path) and replaces
    O(path) only when everything verified; a corrupt or truncated artifact, or a wrong key, fails and
    leaves the previous model in place.
  - O(mode=verify) downloads and checks a version without writing anything.
  - O(mode=replicate) copies versions, still encrypted, to O(target_store) (another region, account or
    cloud) and verifies every copied version there byte for byte; a rerun copies only what is missing.
  - Why this module exists; the object-storage modules of the cloud collections copy objects, but none
    gives a verified, encrypted, resumable, content-addressed model with an atomic swap on the host.
author:
  - llmops.platform maintainers (@llmops)
extends_documentation_fragment:
  - llmops.platform.storage
  - llmops.platform.storage.target_store
attributes:
  check_mode:
    support: full
    description: Reports which files would be uploaded, or whether O(path) would be replaced.
  diff_mode:
    support: none
    description: Model files are binary; RV(uploaded) and RV(skipped) say what changes.
options:
  mode:
    description: What to do.
    type: str
    choices: [push, pull, verify, replicate]
    required: true
  name:
    description: Artifact name (for example the model's name); one key prefix in the store.
    type: str
    required: true
  version:
    description:
      - Version to push or pull. On push, defaults to a digest of the content (same content, same version);
        on pull and verify, defaults to V(latest), the newest version whose manifest verifies.
      - Versions are immutable; pushing different content under an existing version fails.
    type: str
  path:
    description: The local model directory (source of a push, destination of a pull).
    type: path
"""

EXAMPLES = r"""
- name: Publish a fine-tuned model
  llmops.platform.model_artifact:
    mode: push
    name: llama-3-8b-support
    path: /srv/models/llama-3-8b-support
    store: {type: s3, bucket: acme-llm-artifacts, region: eu-west-1}
    encryption: {kms_key_id: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}
  register: published

- name: Install the newest verified version on a serving host
  llmops.platform.model_artifact:
    mode: pull
    name: llama-3-8b-support
    path: /var/lib/llmops/models/llama-3-8b-support
    store: {type: s3, bucket: acme-llm-artifacts, region: eu-west-1}
    encryption: {kms_key_id: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}

- name: Check a backup copy byte for byte in the lab
  llmops.platform.model_artifact:
    mode: verify
    name: tiny-llama
    version: "{{ published.version }}"
    store: {type: local, path: /srv/llmops-backups/models}
    encryption: {key_file: /etc/llmops/keys/model-artifacts.key}
"""

RETURN = r"""
version:
  description: The version pushed, pulled or verified.
  returned: always
  type: str
  sample: 3f2a9c0d41b7e615
uploaded:
  description: Files whose content was uploaded (push), or would be in check mode.
  returned: when mode is push
  type: list
  elements: str
blobs_uploaded:
  description: Distinct contents uploaded (files with identical content share one encrypted blob).
  returned: when mode is push
  type: int
skipped:
  description: Files whose content the store already had (push).
  returned: when mode is push
  type: list
  elements: str
replicated:
  description: Versions copied to O(target_store) and verified there (or that would be, in check mode).
  returned: when mode is replicate
  type: list
  elements: str
files:
  description: Number of files verified.
  returned: when mode is verify
  type: int
total_size:
  description: Bytes verified.
  returned: when mode is verify
  type: int
"""


from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository
from ansible_collections.llmops.platform.plugins.module_utils.stores import open_store
from ansible_collections.llmops.platform.plugins.module_utils.storage_args import (
    ENCRYPTION_OPTION, STORE_OPTION, key_wrapper)

ARGUMENT_SPEC = dict(
    mode=dict(type="str", required=True, choices=["push", "pull", "verify", "replicate"]),
    name=dict(type="str", required=True),
    version=dict(type="str"),
    path=dict(type="path"),
    store=STORE_OPTION,
    target_store=dict(STORE_OPTION, required=False),
    encryption=ENCRYPTION_OPTION,
)

REQUIRED_IF = [("mode", "push", ["path"]), ("mode", "pull", ["path"]), ("mode", "replicate", ["target_store"])]


def run(module):
    params = module.params
    repo = ArtifactRepository(open_store(params["store"]), params["name"], key_wrapper(params))
    if params["mode"] == "push":
        return repo.push(params["path"], params["version"], check_mode=module.check_mode)
    if params["mode"] == "pull":
        return repo.pull(params["path"], params["version"], check_mode=module.check_mode)
    if params["mode"] == "replicate":
        target = ArtifactRepository(open_store(params["target_store"]), params["name"], repo.wrapper)
        return repo.replicate(target, [params["version"]] if params["version"] else None, check_mode=module.check_mode)
    result = repo.verify(params["version"])
    result["changed"] = False
    return result


def main():
    run_module(ARGUMENT_SPEC, run, required_if=REQUIRED_IF)


if __name__ == "__main__":
    main()
