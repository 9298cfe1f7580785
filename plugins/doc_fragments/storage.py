# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import yaml


class ModuleDocFragment(object):
    # Where encrypted artifacts and backup sets live, and the key that protects them.
    DOCUMENTATION = r"""
options:
  store:
    description:
      - Where artifacts and backup sets live. Give O(store.type) and its fields, or O(store.url).
      - V(local) is a directory (the lab, a mounted volume); V(s3) an S3 bucket (boto3); V(gcs) a Google Cloud
        Storage bucket (google-cloud-storage); V(azure) an Azure Blob Storage container (azure-storage-blob).
    type: dict
    required: true
    suboptions:
      type:
        description: Kind of store; required unless O(store.url) names it.
        type: str
        choices: [local, s3, gcs, azure]
      url:
        description:
          - The store as one URL, instead of O(store.type) and its fields (fields that are also set must agree).
          - V(/srv/backups) or V(file:///srv/backups) (local), V(s3://bucket/prefix), V(gs://bucket/prefix),
            V(az://account/container/prefix), or V(https://account.blob.core.windows.net/container/prefix)
            (Azure, any cloud's C(blob.core) host).
        type: str
      path:
        description: Directory of a V(local) store.
        type: path
      bucket:
        description: Bucket of an V(s3) or V(gcs) store.
        type: str
      prefix:
        description: Key prefix inside the bucket or container.
        type: str
        default: ""
      region:
        description: Region of an V(s3) bucket.
        type: str
      endpoint_url:
        description:
          - Alternative endpoint. V(s3) an S3-compatible service; V(gcs) the JSON API root (default
            V(https://storage.googleapis.com)); V(azure) the account's blob endpoint (default
            V(https://<account>.blob.core.windows.net); C(https) only, except on loopback).
        type: str
      profile:
        description: AWS profile of an V(s3) store; otherwise the usual AWS environment variables and files are used.
        type: str
      account:
        description: Storage account name of an V(azure) store.
        type: str
      container:
        description: Container of an V(azure) store.
        type: str
      service_account_file:
        description:
          - Service account JSON key file of a V(gcs) store. Without it (and without O(store.access_token)),
            Application Default Credentials are used (C(GOOGLE_APPLICATION_CREDENTIALS), the GCE/GKE metadata server).
        type: path
      access_token:
        description:
          - A bearer token obtained elsewhere, for V(gcs) (OAuth 2.0, scope C(devstorage.read_write)) or V(azure)
            (Microsoft Entra, scope C(https://storage.azure.com/.default)); it is not refreshed.
          - Without it, V(azure) uses a service principal from C(AZURE_CLIENT_ID), C(AZURE_SECRET) and
            C(AZURE_TENANT) (as the AWX Azure credential sets them), else a managed identity or C(az login).
        type: str
      sas_token:
        description:
          - Shared access signature of an V(azure) store (the query string, with or without C(?)); it needs
            read, add, create, write, delete and list permissions. Used instead of a Microsoft Entra token.
        type: str
  encryption:
    description: The key that wraps the artifact's data key. Exactly one of O(encryption.key_file) or O(encryption.kms_key_id).
    type: dict
    required: true
    suboptions:
      key_file:
        description: File with a 256-bit key (32 raw bytes, 64 hex digits, or base64). Keep it out of the repository.
        type: path
      kms_key_id:
        description: AWS KMS key id or ARN; data keys are wrapped and unwrapped by KMS and the key never leaves it.
        type: str
      kms_region:
        description: Region of the KMS key (defaults to O(store.region)).
        type: str
      kms_endpoint_url:
        description: Alternative KMS endpoint (tests).
        type: str
notes:
  - Needs the C(cryptography) Python package on the host that runs it, C(boto3) for S3 or KMS, C(google-cloud-storage)
    for GCS, C(azure-storage-blob) and (without a SAS token) C(azure-identity) for Azure Blob Storage.
  - Every upload carries an MD5 the service checks on arrival; large objects go up in resumable pieces (S3 by
    boto3, GCS resumable uploads, Azure blocks) and transient errors (throttling, 5xx, dropped connections) are retried.
"""


# The destination of a replication (model_artifact mode=replicate): the fields of O(store) under another
# name. Derived from the store's documentation above, so the two cannot drift apart.
TARGET_STORE_DESCRIPTION = [
    "Destination of O(mode=replicate), another store, region, account or cloud, with the same fields as O(store)."
    " The same O(encryption) key must be able to unwrap the data key there (a key file, or a multi-region KMS key).",
]


def _renamed(value, old, new):
    """`value` with every O(old.field) reference in its strings turned into O(new.field)."""
    if isinstance(value, dict):
        return dict((key, _renamed(item, old, new)) for key, item in value.items())
    if isinstance(value, list):
        return [_renamed(item, old, new) for item in value]
    if isinstance(value, str):
        return value.replace("O(%s." % old, "O(%s." % new)
    return value


def _target_store_documentation():
    store = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["store"]
    target = dict(description=TARGET_STORE_DESCRIPTION, type="dict",
                  suboptions=_renamed(store["suboptions"], "store", "target_store"))
    return yaml.safe_dump({"options": {"target_store": target}}, sort_keys=False, width=120)


ModuleDocFragment.TARGET_STORE = _target_store_documentation()
