"""The real storage emulators the object-store tests run against, started on loopback.

- gcp-storage-emulator (PyPI, pinned in requirements/dev.txt): the GCS JSON and upload APIs, in memory.
- Azurite (npm, pinned with integrity hashes in tests/emulators/package-lock.json, installed by
  scripts/bootstrap.sh): the Blob service over https with `--oauth basic`, so both a SAS (signed with the
  well-known devstoreaccount1 key, which Azurite checks) and a Microsoft Entra bearer token work. Azurite
  checks a token's issuer, audience and lifetime, not its signature.
Each emulator is started once per test session; every test gets its own bucket or container. Faults the
emulators cannot make on purpose come from fault_injection.FaultProxy in front of them.
"""
import base64
import datetime
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from ansible_collections.llmops.platform.tests.unit.plugins.module_utils.providers.azure_fixture_server import (
    make_certificate)

ROOT = pathlib.Path(__file__).resolve().parents[4]
AZURITE = ROOT / "tests" / "emulators" / "node_modules" / ".bin" / "azurite-blob"
GCS_EMULATOR = pathlib.Path(sys.executable).parent / "gcp-storage-emulator"
# Azurite's documented development account (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
GCS_TOKEN = "gcs-emulator-token"  # the emulator does not check tokens; the SDK still sends it


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(argv, port, log_path, what, hint):
    if not pathlib.Path(argv[0]).exists():
        raise RuntimeError("%s is not installed (%s): %s" % (what, argv[0], hint))
    log = open(log_path, "wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("%s exited: %s" % (what, pathlib.Path(log_path).read_text(errors="replace")))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("%s did not listen on 127.0.0.1:%d within 60 s" % (what, port))


def _stop(process):
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def entra_token(lifetime=3600, audience="https://storage.azure.com"):
    """A JWT shaped as Microsoft Entra issues them for storage (Azurite's basic OAuth checks these claims)."""
    now = int(time.time())
    claims = {"aud": audience, "iss": "https://sts.windows.net/%s/" % uuid.uuid4(), "iat": now - 60,
              "nbf": now - 60, "exp": now + lifetime, "oid": str(uuid.uuid4()), "tid": str(uuid.uuid4())}

    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (part({"alg": "RS256", "typ": "JWT"}), part(claims), part("unsigned"))


class GcsEmulator(object):
    def __init__(self):
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.process = _start([str(GCS_EMULATOR), "start", "--host", "127.0.0.1", "--port", str(self.port),
                               "--in-memory"], self.port, os.path.join(tempfile.gettempdir(), "gcs-emulator.log"),
                              "gcp-storage-emulator", "bash scripts/bootstrap.sh installs it")
        self.client = storage.Client(project="llmops-ut", credentials=AnonymousCredentials(),
                                     client_options={"api_endpoint": self.url})

    def new_bucket(self):
        return self.client.create_bucket("llmops-ut-%s" % uuid.uuid4().hex[:12]).name

    def replace(self, bucket, name, data):
        """Write a new generation of an object directly (behind any proxy)."""
        self.client.bucket(bucket).blob(name).upload_from_string(data)

    def close(self):
        _stop(self.process)


class AzuriteEmulator(object):
    def __init__(self, directory):
        self.port = _free_port()
        self.cert, key = make_certificate(directory)
        self.account = ACCOUNT
        self.url = "https://127.0.0.1:%d/%s" % (self.port, ACCOUNT)  # path-style: the account is in the path
        location = os.path.join(directory, "azurite")
        os.makedirs(location)
        # --skipApiVersionCheck: the SDK may speak a newer x-ms-version than this Azurite release knows.
        # --disableTelemetry: tests never leave loopback.
        self.process = _start([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                               "--location", location, "--silent", "--skipApiVersionCheck", "--disableTelemetry",
                               "--oauth", "basic", "--cert", self.cert, "--key", key],
                              self.port, os.path.join(directory, "azurite.log"), "Azurite",
                              "bash scripts/bootstrap.sh runs npm ci in tests/emulators")
        self.service = BlobServiceClient(self.url, credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY},
                                         connection_verify=self.cert)

    def new_container(self):
        return self.service.create_container("ut-%s" % uuid.uuid4().hex[:12]).container_name

    def sas(self, container):
        """A container SAS with read, add, create, write, delete and list, as the store docs ask."""
        return generate_container_sas(ACCOUNT, container, account_key=ACCOUNT_KEY,
                                      permission=ContainerSasPermissions(read=True, add=True, create=True, write=True,
                                                                         delete=True, list=True),
                                      expiry=datetime.datetime.now(datetime.timezone.utc)
                                      + datetime.timedelta(hours=1))

    def replace(self, container, name, data):
        """Write a new version of a blob directly (behind any proxy): its ETag changes."""
        self.service.get_blob_client(container, name).upload_blob(data, overwrite=True)

    def close(self):
        _stop(self.process)
