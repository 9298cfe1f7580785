# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 as an object store (boto3); a PUT is atomic, so an object exists whole or not at all."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    HAS_BOTO3 = True
except ImportError:  # pragma: no cover
    HAS_BOTO3 = False

from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.stores.base import PrefixedStore


class S3Store(PrefixedStore):
    def __init__(self, bucket, prefix="", region=None, endpoint_url=None, profile=None,
                 access_key=None, secret_key=None, session_token=None):
        if not HAS_BOTO3:
            raise ProviderError("S3 storage needs boto3", hint="pip install boto3 (see requirements/controller.txt)")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        session = boto3.session.Session(profile_name=profile, aws_access_key_id=access_key,
                                        aws_secret_access_key=secret_key, aws_session_token=session_token,
                                        region_name=region)
        self.client = session.client("s3", endpoint_url=endpoint_url,
                                     config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 8}))

    def describe(self):
        return "s3://%s/%s" % (self.bucket, self.prefix)

    def _call(self, what, func, **kwargs):
        try:
            return func(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.NoCredentialsError:
            raise SpecError("store", "no AWS credentials were found for %s" % self.describe(),
                            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or attach an AWX AWS credential")
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                raise ProviderError("%s: not found in %s" % (what, self.describe()), code="NotFound")
            raise ProviderError("%s on %s failed: %s" % (what, self.describe(), error.get("Message") or exc), code=code,
                                hint="the credentials need s3:GetObject, s3:PutObject, s3:ListBucket and s3:DeleteObject"
                                if code in ("AccessDenied", "403") else None)

    def size(self, key):
        try:
            return self._call("head %s" % key, self.client.head_object, Key=self._name(key))["ContentLength"]
        except ProviderError as exc:
            if exc.code == "NotFound":
                return None
            raise

    def put_file(self, key, path):
        with open(path, "rb") as handle:
            self._call("put %s" % key, self.client.put_object, Key=self._name(key), Body=handle)

    def put_bytes(self, key, data):
        self._call("put %s" % key, self.client.put_object, Key=self._name(key), Body=data)

    def get_file(self, key, path):
        body = self._call("get %s" % key, self.client.get_object, Key=self._name(key))["Body"]
        with open(path, "wb") as handle:
            for chunk in iter(lambda: body.read(1 << 20), b""):
                handle.write(chunk)

    def get_bytes(self, key):
        return self._call("get %s" % key, self.client.get_object, Key=self._name(key))["Body"].read()

    def list(self, prefix):
        keys, token = [], None
        full = self._name(prefix)
        while True:
            kwargs = {"Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list %s" % prefix, self.client.list_objects_v2, **kwargs)
            keys.extend(item["Key"] for item in page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not token:
                return self._relative(keys)

    def delete(self, key):
        self._call("delete %s" % key, self.client.delete_object, Key=self._name(key))
