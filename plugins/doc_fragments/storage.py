# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Where encrypted artifacts and backup sets live, and the key that protects them.
    DOCUMENTATION = r"""
options:
  store:
    description: Where artifacts and backup sets live.
    type: dict
    required: true
    suboptions:
      type:
        description: V(local) is a directory (the lab, a mounted volume); V(s3) is an S3 bucket.
        type: str
        choices: [local, s3]
        required: true
      path:
        description: Directory of a V(local) store.
        type: path
      bucket:
        description: Bucket of an V(s3) store.
        type: str
      prefix:
        description: Key prefix inside the bucket.
        type: str
        default: ""
      region:
        description: Region of the bucket.
        type: str
      endpoint_url:
        description: Alternative S3 endpoint (S3-compatible storage, tests).
        type: str
      profile:
        description: AWS profile; otherwise the usual AWS environment variables and files are used.
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
  - Needs the C(cryptography) Python package on the host that runs it, and C(boto3) for S3 or KMS.
"""
