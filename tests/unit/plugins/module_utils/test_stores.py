"""One contract for every object store (local, S3, GCS, Azure Blob), then what each cloud's store adds.

Every store talks to a real server over HTTP: S3 to moto in server mode, GCS to gcp-storage-emulator,
Azure Blob to Azurite (over https, with a Microsoft Entra token or a SAS signed with Azurite's development
key), started by storage_emulators.py. What the emulators cannot do on purpose (a 503 in the middle of an
upload, a download cut off or corrupted on the way, an object replaced between two reads) is injected by
fault_injection.FaultProxy in front of them. Small chunk and block sizes make a 1 MiB file take the
block / ranged paths.
"""
import base64
import hashlib
import json
import os
import uuid

import pytest

from fault_injection import FaultProxy
from storage_emulators import ACCOUNT, GCS_TOKEN, AzuriteEmulator, GcsEmulator, entra_token

from ansible_collections.llmops.platform.plugins.module_utils import stores
from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository
from ansible_collections.llmops.platform.plugins.module_utils.stores.azure_blob import AzureBlobStore
from ansible_collections.llmops.platform.plugins.module_utils.envelope import FileKeyWrapper
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.stores.gcs import GcsStore
from ansible_collections.llmops.platform.plugins.modules import model_artifact

KIB = 1024
BIG = 1024 * KIB + 12345  # more than one Azure block / download range, not a multiple of either
HUGE = 8 * 1024 * KIB + 12345  # past the SDK's 8 MiB multipart limit: a GCS resumable upload


class Target(object):
    """One test's bucket or container in a session-wide emulator, and a fault proxy in front of it."""

    def __init__(self, emulator, name, **extra):
        self.emulator, self.name = emulator, name
        self.proxy = FaultProxy(emulator.url.rsplit("/%s" % ACCOUNT, 1)[0], cafile=getattr(emulator, "cert", None))
        self.__dict__.update(extra)

    def close(self):
        self.proxy.close()


@pytest.fixture(scope="session")
def gcs_emulator():
    emulator = GcsEmulator()
    yield emulator
    emulator.close()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    emulator = AzuriteEmulator(str(tmp_path_factory.mktemp("azurite")))
    yield emulator
    emulator.close()


@pytest.fixture
def gcs(gcs_emulator, request):
    target = Target(gcs_emulator, gcs_emulator.new_bucket())
    request.addfinalizer(target.close)
    return target


@pytest.fixture
def azure(azurite, request):
    target = Target(azurite, azurite.new_container())
    target.sas = azurite.sas(target.name)
    request.addfinalizer(target.close)
    return target


def gcs_store(target, direct=False, **extra):
    options = dict(prefix="team/a", access_token=GCS_TOKEN, chunk_size=256 * KIB, retry_base_delay=0.01,
                   retry_timeout=5, endpoint_url=target.emulator.url if direct else target.proxy.url)
    options.update(extra)
    return GcsStore(target.name, **options)


def azure_store(target, direct=True, **extra):
    """Direct: Azurite over https with an Entra token. Through the fault proxy (plain http on loopback,
    where the SDK sends no bearer token): the container's SAS."""
    options = dict(prefix="team/a", block_size=256 * KIB, single_put_limit=300 * KIB, get_chunk_size=64 * KIB,
                   retry_base_delay=0)
    if direct:
        options.update(endpoint_url=target.emulator.url, access_token=entra_token(), verify=target.emulator.cert)
    else:
        options.update(endpoint_url="%s/%s" % (target.proxy.url, ACCOUNT), sas_token=target.sas)
    options.update(extra)
    return AzureBlobStore(ACCOUNT, target.name, **options)


@pytest.fixture(params=["local", "s3", "gcs", "azure", "azure-sas"])
def store(request, tmp_path):
    kind = request.param
    if kind == "local":
        return stores.LocalStore(str(tmp_path / "store"))
    if kind == "s3":
        backend = request.getfixturevalue("aws_backend")
        bucket = "llmops-ut-%s" % uuid.uuid4().hex[:8]
        backend.client("s3").create_bucket(Bucket=bucket)
        # moto itself, not aws_backend's fault proxy: the proxy answers HEAD with Content-Length 0.
        host, port = backend.moto.get_host_and_port()
        return stores.S3Store(bucket, "team/a", region="us-east-1", endpoint_url="http://%s:%d" % (host, port),
                              access_key="testing", secret_key="testing")
    if kind == "gcs":
        return gcs_store(request.getfixturevalue("gcs"), direct=True)
    target = request.getfixturevalue("azure")
    if kind == "azure-sas":
        return azure_store(target, access_token=None, sas_token="?" + target.sas)
    return azure_store(target)


# -- the contract --------------------------------------------------------------------------------------
def test_bytes_round_trip_and_size(store):
    assert store.size("a/missing.json") is None
    store.put_bytes("a/one.json", b'{"x": 1}')
    assert store.get_bytes("a/one.json") == b'{"x": 1}'
    assert store.size("a/one.json") == 8
    store.put_bytes("a/one.json", b"replaced")  # a put replaces
    assert store.get_bytes("a/one.json") == b"replaced"
    store.put_bytes("a/empty", b"")
    assert store.size("a/empty") == 0 and store.get_bytes("a/empty") == b""


def test_large_file_round_trip(store, tmp_path):
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(BIG))
    store.put_file("m/blobs/weights", str(source))
    assert store.size("m/blobs/weights") == BIG
    target = tmp_path / "back.bin"
    store.get_file("m/blobs/weights", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    big = os.urandom(BIG)
    store.put_bytes("m/blobs/bytes", big)
    assert store.get_bytes("m/blobs/bytes") == big


def test_list_is_sorted_relative_and_pages(store):
    names = ["art/manifests/%02d.json" % i for i in range(7)] + ["art/blobs/x", "other/y", "art/with space/ü.bin"]
    for name in reversed(names):
        store.put_bytes(name, name.encode())
    assert store.list("art/manifests/") == sorted(names[:7])
    assert store.list("art/") == sorted(n for n in names if n.startswith("art/"))
    assert store.list("") == sorted(names)
    assert store.list("nothing/") == []
    assert store.get_bytes("art/with space/ü.bin") == "art/with space/ü.bin".encode()


def test_missing_objects_are_not_found(store, tmp_path):
    for call in (lambda: store.get_bytes("nope"), lambda: store.get_file("nope", str(tmp_path / "x"))):
        with pytest.raises(ProviderError) as err:
            call()
        assert err.value.code == "NotFound"


def test_delete_is_idempotent(store):
    store.put_bytes("d/k", b"1")
    store.delete("d/k")
    assert store.size("d/k") is None and store.list("d/") == []
    store.delete("d/k")


def test_artifact_push_pull_verify_over_the_store(store, tmp_path):
    """model_artifact's repository, unchanged, on every store."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes(b'{"hidden_size": 64}')
    (model / "model.safetensors").write_bytes(os.urandom(BIG))
    key = tmp_path / "k"
    key.write_bytes(os.urandom(32))
    repo = ArtifactRepository(store, "tiny", FileKeyWrapper(str(key)))
    pushed = repo.push(str(model))
    assert pushed["changed"]
    assert repo.push(str(model))["changed"] is False
    dest = tmp_path / "serving" / "model"
    assert repo.pull(str(dest))["changed"]
    assert (dest / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    assert repo.verify(pushed["version"])["version"] == pushed["version"]


# -- URLs and open_store -------------------------------------------------------------------------------
@pytest.mark.parametrize("url, fields", [
    ("/srv/backups", {"type": "local", "path": "/srv/backups"}),
    ("file:///srv/backups", {"type": "local", "path": "/srv/backups"}),
    ("s3://acme-backups/prod/eu", {"type": "s3", "bucket": "acme-backups", "prefix": "prod/eu"}),
    ("gs://acme-backups", {"type": "gcs", "bucket": "acme-backups", "prefix": ""}),
    ("gs://acme-backups/prod/", {"type": "gcs", "bucket": "acme-backups", "prefix": "prod"}),
    ("az://acmellm/backups/prod", {"type": "azure", "account": "acmellm", "container": "backups", "prefix": "prod"}),
    ("https://acmellm.blob.core.windows.net/backups/prod/eu",
     {"type": "azure", "account": "acmellm", "container": "backups", "prefix": "prod/eu",
      "endpoint_url": "https://acmellm.blob.core.windows.net"}),
    ("https://acmellm.blob.core.usgovcloudapi.net/backups",
     {"type": "azure", "account": "acmellm", "container": "backups", "prefix": "",
      "endpoint_url": "https://acmellm.blob.core.usgovcloudapi.net"}),
])
def test_store_urls(url, fields):
    assert stores.parse_store_url(url) == fields


@pytest.mark.parametrize("url", ["gs:/bucket", "az://account", "https://example.com/x", "ftp://x/y", "bucket/prefix"])
def test_bad_store_urls_name_the_field(url):
    with pytest.raises(SpecError) as err:
        stores.parse_store_url(url)
    assert err.value.field == "store.url"


def test_open_store_by_url_and_by_fields(tmp_path):
    gcs = stores.open_store({"url": "gs://acme/prod", "access_token": "t", "prefix": ""})
    assert isinstance(gcs, GcsStore) and gcs.describe() == "gs://acme/prod"
    az = stores.open_store({"type": "azure", "account": "acmellm", "container": "backups", "sas_token": "sv=x"})
    assert isinstance(az, AzureBlobStore) and az.endpoint == "https://acmellm.blob.core.windows.net"
    assert isinstance(stores.open_store("file://%s" % tmp_path), stores.LocalStore)
    with pytest.raises(SpecError) as err:
        stores.open_store({"url": "gs://acme/prod", "type": "s3"})
    assert err.value.field == "store.type"
    with pytest.raises(SpecError) as err:
        stores.open_store({"type": "azure", "account": "acmellm"})
    assert err.value.field == "store.container"
    with pytest.raises(SpecError) as err:
        stores.open_store({"type": "azure", "account": "a", "container": "c", "endpoint_url": "http://blob.example"})
    assert err.value.field == "store.endpoint_url"
    with pytest.raises(SpecError):
        stores.open_store({})


# -- GCS -----------------------------------------------------------------------------------------------
def gcs_error(status, reason, message):
    """An error answer in the JSON API's documented shape (cloud.google.com/storage/docs/json_api/v1/status-codes)."""
    return dict(status=status, headers={"Content-Type": "application/json"}, body=json.dumps(
        {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}).encode())


def chunk_puts(target):
    return target.proxy.requests("PUT", "/upload/", "upload_id")


def test_gcs_small_objects_go_multipart_large_ones_resumable_in_chunks(gcs, tmp_path):
    store = gcs_store(gcs, chunk_size=1024 * KIB)
    store.put_bytes("small", b"x" * 1000)
    assert len(gcs.proxy.requests("POST", "/upload/", "uploadType=multipart")) == 1
    path = tmp_path / "big"
    path.write_bytes(os.urandom(HUGE))
    store.put_file("big", str(path))
    assert len(gcs.proxy.requests("POST", "/upload/", "uploadType=resumable")) == 1
    assert len(chunk_puts(gcs)) == -(-HUGE // (1024 * KIB))
    assert gcs.emulator.client.bucket(gcs.name).blob("team/a/big").download_as_bytes() == path.read_bytes()


def test_gcs_503_in_the_middle_of_a_resumable_upload_resends_only_that_chunk(gcs):
    store = gcs_store(gcs, chunk_size=1024 * KIB)
    data = os.urandom(HUGE)
    # (gcp-storage-emulator refuses a chunk it already holds, which GCS accepts: so the chunk is lost before
    # it arrives, rather than its answer after.)
    gcs.proxy.fault("PUT", "/upload/", times=2, query_part="upload_id", skip=1,
                    **gcs_error(503, "backendError", "Backend Error"))
    store.put_bytes("big", data)
    assert store.get_bytes("big") == data
    ranges = [h["content-range"] for m, p, q, h, r in chunk_puts(gcs)]
    assert len(ranges) == -(-HUGE // (1024 * KIB)) + 2 and ranges[1] == ranges[2] == ranges[3]  # never from zero


def test_gcs_throttling_is_retried_and_persistent_5xx_is_an_error(gcs):
    store = gcs_store(gcs, retry_timeout=1)
    store.put_bytes("k", b"1")
    gcs.proxy.fault("GET", "/storage/v1/b/", times=2, **gcs_error(429, "rateLimitExceeded", "slow down"))
    assert store.list("") == ["k"]
    gcs.proxy.fault("GET", "/o/", times=10 ** 6, query_part="alt=media", **gcs_error(503, "backendError", "Backend Error"))
    with pytest.raises(ProviderError) as err:
        store.get_bytes("k")
    assert err.value.code == "backendError" and "gs://%s/team/a" % gcs.name in str(err.value)


def test_gcs_cut_download_resumes_pinned_to_its_generation(gcs, tmp_path):
    store = gcs_store(gcs)
    data = os.urandom(BIG)
    store.put_bytes("big", data)
    gcs.proxy.fault("GET", "/o/", cut=100 * KIB, query_part="alt=media")
    store.get_file("big", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    first, resumed = [(q, h) for m, p, q, h, r in gcs.proxy.requests("GET", "/o/", "alt=media")]
    generation = gcs.emulator.client.bucket(gcs.name).get_blob("team/a/big").generation
    assert first[0]["generation"] == resumed[0]["generation"] == str(generation)
    assert "range" not in first[1] and int(resumed[1]["range"][len("bytes="):].split("-")[0]) > 0


def test_gcs_object_replaced_during_a_resumed_download_is_not_spliced(gcs, tmp_path):
    store = gcs_store(gcs)
    store.put_bytes("big", os.urandom(BIG))
    gcs.proxy.fault("GET", "/o/", cut=100 * KIB, query_part="alt=media",
                    then=lambda: gcs.emulator.replace(gcs.name, "team/a/big", os.urandom(BIG)))
    with pytest.raises(ProviderError) as err:
        store.get_file("big", str(tmp_path / "out"))
    # GCS answers a request for the old generation 404; the emulator ignores ?generation= and sends the new
    # object's bytes, which the MD5 check refuses. Either way nothing spliced is kept.
    assert err.value.code == "ChecksumMismatch"
    assert not (tmp_path / "out").exists()  # the SDK removes what it had written


def test_gcs_corruption_in_transit_is_detected(gcs):
    store = gcs_store(gcs)
    store.put_bytes("k", b"important bytes")
    gcs.proxy.fault("GET", "/o/", corrupt=True, query_part="alt=media")
    with pytest.raises(ProviderError) as err:
        store.get_bytes("k")
    assert err.value.code == "ChecksumMismatch"


def test_gcs_errors_name_the_cause(gcs):
    gcs.proxy.fault("GET", "/o/team%2Fa%2Fk", **gcs_error(404, "notFound", "The specified bucket does not exist."))
    with pytest.raises(ProviderError) as err:
        gcs_store(gcs).size("k")
    assert err.value.code == "BucketNotFound" and "store.bucket" in str(err.value)
    gcs.proxy.fault("POST", "/upload/", **gcs_error(403, "forbidden", "caller does not have storage.objects.create"))
    with pytest.raises(ProviderError) as err:
        gcs_store(gcs).put_bytes("k", b"1")
    assert err.value.code == "forbidden" and "roles/storage.objectAdmin" in str(err.value)
    # A 401 makes the SDK refresh the token; one obtained elsewhere cannot be refreshed.
    gcs.proxy.fault("GET", "/o/team%2Fa%2Fk", **gcs_error(401, "authError", "Invalid Credentials"))
    with pytest.raises(ProviderError) as err:
        gcs_store(gcs).size("k")
    assert err.value.code == "UNAUTHENTICATED"


# -- Azure ---------------------------------------------------------------------------------------------
def azure_error(status, code, message):
    """An error answer in the Blob service's documented shape (x-ms-error-code and an XML Error body)."""
    return dict(status=status, headers={"x-ms-error-code": code, "Content-Type": "application/xml"},
                body=("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>%s</Message></Error>"
                      % (code, message)).encode())


def puts(target, comp=None):
    return [q for m, p, q, h, r in target.proxy.requests("PUT") if q.get("comp") == comp]


def test_azure_small_blobs_are_put_whole_large_ones_in_blocks_with_their_md5(azure, tmp_path):
    store = azure_store(azure, direct=False)
    store.put_bytes("small", b"x" * 1000)
    assert len(puts(azure)) == 1
    path = tmp_path / "big"
    path.write_bytes(os.urandom(BIG))
    store.put_file("big", str(path))
    assert len(puts(azure, "block")) == -(-BIG // (256 * KIB)) and len(puts(azure, "blocklist")) == 1
    assert all(h.get("Content-MD5") for m, p, q, h, r in azure.proxy.requests("PUT"))  # checked on arrival
    blob = azure.emulator.service.get_blob_client(azure.name, "team/a/big")
    assert blob.download_blob().readall() == path.read_bytes()
    stored = blob.get_blob_properties().content_settings.content_md5
    assert base64.b64encode(stored) == base64.b64encode(hashlib.md5(path.read_bytes()).digest())


def test_azure_failed_block_upload_leaves_nothing_visible(azure):
    azure.proxy.fault("PUT", "/big", times=10, query_part="comp=block&", skip=2,
                      **azure_error(500, "InternalError", "Server failed"))
    with pytest.raises(ProviderError) as err:
        azure_store(azure, direct=False, retry_attempts=2).put_bytes("big", os.urandom(BIG))
    assert err.value.code == "InternalError"
    assert azure_store(azure).size("big") is None  # nothing visible before the block list is committed


def test_azure_block_whose_answer_was_lost_is_sent_again(azure):
    # The third block arrives, but its 201 is replaced by a 503: the SDK puts the same block id again.
    azure.proxy.fault("PUT", "/big", after=True, query_part="comp=block&", skip=2,
                      **azure_error(503, "ServerBusy", "The server is busy"))
    data = os.urandom(BIG)
    azure_store(azure, direct=False).put_bytes("big", data)
    blocks = [q["blockid"] for q in puts(azure, "block")]
    assert len(blocks) == -(-BIG // (256 * KIB)) + 1 and blocks[2] == blocks[3]
    assert azure_store(azure).get_bytes("big") == data


def test_azure_throttling_is_retried(azure):
    store = azure_store(azure, direct=False)
    store.put_bytes("k", b"1")
    azure.proxy.fault("GET", "/" + azure.name, times=2, query_part="comp=list",
                      **azure_error(503, "ServerBusy", "The server is busy"))
    assert store.list("") == ["k"]


def test_azure_cut_download_resumes_with_if_match(azure, tmp_path):
    store = azure_store(azure, direct=False)
    data = os.urandom(BIG)
    store.put_bytes("big", data)
    azure.proxy.fault("GET", "/big", cut=10 * KIB, skip=2)
    store.get_file("big", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    reads = [h for m, p, q, h, r in azure.proxy.requests("GET", "/team/a/big")]
    etag = azure.emulator.service.get_blob_client(azure.name, "team/a/big").get_blob_properties().etag
    assert "If-Match" not in reads[0] and all(h["If-Match"] == etag for h in reads[1:])
    assert reads[3]["x-ms-range"] == reads[2]["x-ms-range"]  # the cut range again, nothing else read twice


def test_azure_blob_replaced_during_a_resumed_download_is_not_spliced(azure, tmp_path):
    store = azure_store(azure, direct=False)
    store.put_bytes("big", os.urandom(BIG))
    azure.proxy.fault("GET", "/big", cut=10 * KIB, skip=2,
                      then=lambda: azure.emulator.replace(azure.name, "team/a/big", os.urandom(BIG)))
    with pytest.raises(ProviderError) as err:
        store.get_file("big", str(tmp_path / "out"))
    assert err.value.code == "ConditionNotMet"


def test_azure_corruption_in_transit_is_detected(azure):
    store = azure_store(azure, direct=False)
    store.put_bytes("k", b"important bytes")
    azure.proxy.fault("GET", "/team/a/k", corrupt=True)
    with pytest.raises(ProviderError) as err:
        store.get_bytes("k")
    assert err.value.code == "ChecksumMismatch"


def test_azure_errors_name_the_cause(azure):
    with pytest.raises(ProviderError) as err:
        AzureBlobStore(ACCOUNT, "nope", endpoint_url=azure.emulator.url, access_token=entra_token(),
                       verify=azure.emulator.cert, retry_base_delay=0).size("k")
    assert err.value.code == "ContainerNotFound" and "store.container" in str(err.value)
    azure.proxy.fault("PUT", "/team/a/", **azure_error(403, "AuthorizationPermissionMismatch", "not authorized"))
    with pytest.raises(ProviderError) as err:
        azure_store(azure, direct=False).put_bytes("k", b"1")
    assert "Storage Blob Data Contributor" in str(err.value)
    forged = azure.sas.rsplit("sig=", 1)[0] + "sig=" + base64.b64encode(b"forged" * 5).decode()
    with pytest.raises(ProviderError) as err:
        azure_store(azure, access_token=None, sas_token=forged).list("")
    # Azure answers a bad signature 403 AuthenticationFailed; Azurite 403 AuthorizationFailure. Both name the SAS.
    assert err.value.code == "AuthorizationFailure" and "SAS permissions" in str(err.value)
    with pytest.raises(ProviderError) as err:  # Azurite checks the token's lifetime
        azure_store(azure, access_token=entra_token(lifetime=-600)).list("")
    assert err.value.code == "AuthenticationFailed"


def test_azure_service_principal_must_be_complete(monkeypatch):
    for name in ("AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_CLIENT_SECRET", "AZURE_TENANT", "AZURE_TENANT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_SECRET", "s")
    with pytest.raises(SpecError) as err:
        AzureBlobStore("acct", "c").size("k")
    assert "AZURE_CLIENT_ID, AZURE_SECRET and AZURE_TENANT" in str(err.value)


# -- through the module --------------------------------------------------------------------------------
def test_model_artifact_module_on_gcs_and_azure_by_url(run_module, gcs, azure, tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(os.urandom(64 * KIB))
    key = tmp_path / "k"
    key.write_bytes(os.urandom(32))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azure.emulator.cert)  # how a private CA reaches the SDK
    token = entra_token()
    targets = {
        "gcs": {"url": "gs://%s/models" % gcs.name, "endpoint_url": gcs.emulator.url, "access_token": GCS_TOKEN},
        "azure": {"url": "az://%s/%s/models" % (ACCOUNT, azure.name), "endpoint_url": azure.emulator.url,
                  "access_token": token},
    }
    push = {"mode": "push", "name": "tiny", "path": str(model), "store": targets["gcs"],
            "encryption": {"key_file": str(key)}}
    first = run_module(model_artifact.main, push)
    assert first["changed"] and not first.failed, first
    assert run_module(model_artifact.main, push)["changed"] is False
    names = [b.name for b in gcs.emulator.client.list_blobs(gcs.name, prefix="models/tiny/manifests/")]
    assert names
    replicate = {"mode": "replicate", "name": "tiny", "store": targets["gcs"], "target_store": targets["azure"],
                 "encryption": {"key_file": str(key)}}
    copied = run_module(model_artifact.main, replicate)
    assert copied["changed"] and not copied.failed, copied
    assert run_module(model_artifact.main, replicate)["changed"] is False
    container = azure.emulator.service.get_container_client(azure.name)
    assert list(container.list_blob_names(name_starts_with="models/tiny/manifests/"))
    dest = tmp_path / "dest"
    pulled = run_module(model_artifact.main, {"mode": "pull", "name": "tiny", "path": str(dest),
                                              "store": targets["azure"], "encryption": {"key_file": str(key)}})
    assert pulled["changed"] and (dest / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    assert token not in repr(pulled) and GCS_TOKEN not in repr(pulled)
