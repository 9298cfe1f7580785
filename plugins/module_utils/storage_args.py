# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `store` and `encryption` options shared by the artifact and backup modules (documented in the
llmops.platform.storage doc fragment), and the key wrapper they describe."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import boto3
    HAS_BOTO3 = True
except ImportError:  # pragma: no cover
    HAS_BOTO3 = False

from ansible_collections.llmops.platform.plugins.module_utils import envelope
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError

STORE_OPTIONS = dict(
    type=dict(type="str", choices=["local", "s3", "gcs", "azure"]),
    url=dict(type="str"),
    path=dict(type="path"),
    bucket=dict(type="str"),
    prefix=dict(type="str", default=""),
    region=dict(type="str"),
    endpoint_url=dict(type="str"),
    profile=dict(type="str"),
    account=dict(type="str"),
    container=dict(type="str"),
    service_account_file=dict(type="path"),
    access_token=dict(type="str", no_log=True),
    sas_token=dict(type="str", no_log=True),
)

STORE_OPTION = dict(type="dict", required=True, options=STORE_OPTIONS, required_one_of=[("type", "url")])

ENCRYPTION_OPTION = dict(type="dict", required=True, no_log=False, options=dict(
    key_file=dict(type="path", no_log=False),
    kms_key_id=dict(type="str", no_log=False),
    kms_region=dict(type="str"),
    kms_endpoint_url=dict(type="str"),
), mutually_exclusive=[("key_file", "kms_key_id")], required_one_of=[("key_file", "kms_key_id")])


def key_wrapper(params):
    """The wrapper for module params with `encryption` (and `store` for the KMS region)."""
    encryption = params["encryption"]
    if encryption["key_file"]:
        return envelope.FileKeyWrapper(encryption["key_file"])
    if not HAS_BOTO3:
        raise SpecError("encryption.kms_key_id", "needs boto3", hint="pip install boto3")
    client = boto3.client("kms", region_name=encryption["kms_region"] or params["store"]["region"],
                          endpoint_url=encryption["kms_endpoint_url"] or None)
    return envelope.KmsKeyWrapper(client, encryption["kms_key_id"])
