"""One contract for every object store (local, S3, GCS, Azure Blob), then what each cloud's store adds.

S3 runs against moto in server mode (real boto3 over HTTP); GCS and Azure against loopback servers that
implement the documented REST operations and refuse requests the documents do not allow
(gcs_fixture_server.py, azure_blob_fixture_server.py name the pages they follow). Small chunk and
block sizes make a 1 MiB file take the resumable / block-list paths.
"""
import hashlib
import os
import uuid

import pytest

from azure_blob_fixture_server import SAS, AzureBlobFixture
from azure_blob_fixture_server import TOKEN as AZURE_TOKEN
from gcs_fixture_server import TOKEN as GCS_TOKEN
from gcs_fixture_server import GcsFixture

from ansible_collections.llmops.platform.plugins.module_utils import stores
from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository
from ansible_collections.llmops.platform.plugins.module_utils.stores.azure_blob import AzureBlobStore
from ansible_collections.llmops.platform.plugins.module_utils.envelope import FileKeyWrapper
from ansible_collections.llmops.platform.plugins.module_utils.errors import ProviderError, SpecError
from ansible_collections.llmops.platform.plugins.module_utils.stores.gcs import GcsStore
from ansible_collections.llmops.platform.plugins.modules import model_artifact

KIB = 1024
BIG = 1024 * KIB + 12345  # more than one GCS chunk / Azure block, not a multiple of either


def gcs_store(fixture, **extra):
    options = dict(prefix="team/a", access_token=GCS_TOKEN, endpoint_url=fixture.url, chunk_size=256 * KIB,
                   multipart_limit=300 * KIB, retry_base_delay=0)
    options.update(extra)
    return GcsStore(fixture.bucket, **options)


def azure_store(fixture, **extra):
    options = dict(prefix="team/a", endpoint_url=fixture.url, access_token=AZURE_TOKEN, verify=fixture.cert,
                   block_size=256 * KIB, single_put_limit=300 * KIB, retry_base_delay=0)
    options.update(extra)
    return AzureBlobStore(fixture.account, fixture.container, **options)


@pytest.fixture
def gcs(request):
    fixture = GcsFixture()
    request.addfinalizer(fixture.close)
    yield fixture
    fixture.verify()


@pytest.fixture
def azure(tmp_path, request):
    fixture = AzureBlobFixture(str(tmp_path))
    request.addfinalizer(fixture.close)
    yield fixture
    fixture.verify()


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
        return gcs_store(request.getfixturevalue("gcs"))
    fixture = request.getfixturevalue("azure")
    if kind == "azure-sas":
        return azure_store(fixture, access_token=None, sas_token="?" + SAS)
    return azure_store(fixture)


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
def uploads(fixture, kind):
    return [q for m, p, q in fixture.log if p.startswith("/upload/") and q.get("uploadType") == kind]


def test_gcs_small_objects_go_multipart_large_ones_resumable_in_256k_chunks(gcs, tmp_path):
    store = gcs_store(gcs)
    store.put_bytes("small", b"x" * 1000)
    assert len(uploads(gcs, "multipart")) == 1 and gcs.objects["team/a/small"]["data"] == b"x" * 1000
    path = tmp_path / "big"
    path.write_bytes(os.urandom(BIG))
    store.put_file("big", str(path))
    chunks = [q for q in uploads(gcs, "resumable") if "upload_id" in q]
    assert len(chunks) == -(-BIG // (256 * KIB))
    assert gcs.objects["team/a/big"]["data"] == path.read_bytes()


def test_gcs_chunk_whose_answer_was_lost_resumes_from_what_the_session_holds(gcs):
    store = gcs_store(gcs)
    data = os.urandom(BIG)
    # The second chunk arrives, but its 308 is replaced by a 503: the store must ask, not resend from zero.
    gcs.fault("PUT", "/upload/", status=503, after=True, query_part="upload_id", skip=1)
    store.put_bytes("big", data)
    assert gcs.objects["team/a/big"]["data"] == data
    puts = [q for m, p, q in gcs.log if m == "PUT" and "upload_id" in q]
    assert len(puts) == -(-BIG // (256 * KIB)) + 1  # each chunk once, plus one status query; none sent twice
    assert gcs.problems == []  # never a chunk that skipped or repeated bytes


def test_gcs_throttling_is_retried_and_persistent_5xx_is_an_error(gcs):
    store = gcs_store(gcs, retry_attempts=3)
    store.put_bytes("k", b"1")
    gcs.fault("GET", "/storage/v1/b/", status=429, times=2)
    assert store.list("") == ["k"]
    gcs.fault("GET", "/storage/v1/b/", status=503, times=3)
    with pytest.raises(ProviderError) as err:
        store.get_bytes("k")
    assert err.value.code == "backendError" and "gs://llmops-ut/team/a" in str(err.value)


def test_gcs_cut_download_resumes_pinned_to_its_generation(gcs, tmp_path):
    store = gcs_store(gcs)
    data = os.urandom(BIG)
    store.put_bytes("big", data)
    gcs.fault("GET", "/o/", cut=100 * KIB, query_part="alt=media")
    store.get_file("big", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    resumed = [q for m, p, q in gcs.log if q.get("alt") == "media"][-1]
    assert resumed["ifGenerationMatch"] == str(gcs.objects["team/a/big"]["generation"])


def test_gcs_object_replaced_during_a_resumed_download_is_not_spliced(gcs, tmp_path):
    store = gcs_store(gcs)
    store.put_bytes("big", os.urandom(BIG))
    gcs.fault("GET", "/o/", cut=100 * KIB, query_part="alt=media",
              then=lambda server: server.finalize("team/a/big", os.urandom(BIG), None))
    with pytest.raises(ProviderError) as err:
        store.get_file("big", str(tmp_path / "out"))
    assert err.value.code == "conditionNotMet"


def test_gcs_corruption_in_transit_is_detected(gcs):
    store = gcs_store(gcs)
    store.put_bytes("k", b"important bytes")
    gcs.corrupt_downloads = 1
    with pytest.raises(ProviderError) as err:
        store.get_bytes("k")
    assert err.value.code == "ChecksumMismatch"


def test_gcs_errors_name_the_cause(gcs):
    with pytest.raises(ProviderError) as err:
        GcsStore("no-such-bucket", access_token=GCS_TOKEN, endpoint_url=gcs.url, retry_base_delay=0).size("k")
    assert err.value.code == "BucketNotFound" and "store.bucket" in str(err.value)
    gcs.fault("POST", "/upload/", status=403, times=1)
    with pytest.raises(ProviderError) as err:
        gcs_store(gcs).put_bytes("k", b"1")
    assert "roles/storage.objectAdmin" in str(err.value)
    with pytest.raises(ProviderError) as err:
        GcsStore(gcs.bucket, access_token="expired", endpoint_url=gcs.url, retry_base_delay=0).size("k")
    assert err.value.code == "UNAUTHENTICATED"


# -- Azure ---------------------------------------------------------------------------------------------
def ops(fixture, comp=None, method="PUT"):
    return [q for m, p, q in fixture.log if m == method and q.get("comp") == comp]


def test_azure_small_blobs_are_put_whole_large_ones_in_blocks(azure, tmp_path):
    store = azure_store(azure)
    store.put_bytes("small", b"x" * 1000)
    assert len(ops(azure)) == 1
    path = tmp_path / "big"
    path.write_bytes(os.urandom(BIG))
    store.put_file("big", str(path))
    assert len(ops(azure, "block")) == -(-BIG // (256 * KIB)) and len(ops(azure, "blocklist")) == 1
    blob = azure.blobs["team/a/big"]
    assert blob["data"] == path.read_bytes()
    assert blob["md5"] == __import__("base64").b64encode(hashlib.md5(path.read_bytes()).digest()).decode()


def test_azure_interrupted_block_upload_sends_only_the_missing_blocks(azure):
    data = os.urandom(BIG)
    azure.fault("PUT", "/big", status=500, code="InternalError", times=2, query_part="comp=block&", skip=2)
    with pytest.raises(ProviderError) as err:
        azure_store(azure, retry_attempts=2).put_bytes("big", data)  # the third block fails twice: gives up
    assert err.value.code == "InternalError"
    assert "team/a/big" not in azure.blobs  # nothing visible before the commit
    before = len(ops(azure, "block"))
    azure_store(azure).put_bytes("big", data)
    assert len(ops(azure, "block")) - before == -(-BIG // (256 * KIB)) - 2  # two blocks were already there
    assert azure.blobs["team/a/big"]["data"] == data


def test_azure_throttling_is_retried(azure):
    store = azure_store(azure)
    store.put_bytes("k", b"1")
    azure.fault("GET", "/artifacts", status=503, code="ServerBusy", times=2, query_part="comp=list")
    assert store.list("") == ["k"]


def test_azure_cut_download_resumes_with_if_match(azure, tmp_path):
    store = azure_store(azure)
    data = os.urandom(BIG)
    store.put_bytes("big", data)
    azure.fault("GET", "/big", cut=100 * KIB)
    store.get_file("big", str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    first, resumed = [c for c, (m, p, q) in zip(azure.conditions, azure.log) if m == "GET" and p.endswith("/big") and not q]
    assert first[2:] == (None, None)
    assert resumed[2] == "bytes=%d-" % (64 * KIB) and resumed[3] == azure.blobs["team/a/big"]["etag"]


def test_azure_blob_replaced_during_a_resumed_download_is_not_spliced(azure, tmp_path):
    store = azure_store(azure)
    store.put_bytes("big", os.urandom(BIG))
    azure.fault("GET", "/big", cut=100 * KIB, then=lambda server: server._store("team/a/big", b"new", None))
    with pytest.raises(ProviderError) as err:
        store.get_file("big", str(tmp_path / "out"))
    assert err.value.code == "ConditionNotMet"


def test_azure_corruption_in_transit_is_detected(azure):
    store = azure_store(azure)
    store.put_bytes("k", b"important bytes")
    azure.corrupt_downloads = 1
    with pytest.raises(ProviderError) as err:
        store.get_bytes("k")
    assert err.value.code == "ChecksumMismatch"


def test_azure_errors_name_the_cause(azure):
    with pytest.raises(ProviderError) as err:
        AzureBlobStore(azure.account, "nope", endpoint_url=azure.url, access_token=AZURE_TOKEN, verify=azure.cert,
                       retry_base_delay=0).size("k")
    assert err.value.code == "ContainerNotFound" and "store.container" in str(err.value)
    azure.fault("PUT", "/artifacts/", status=403, code="AuthorizationPermissionMismatch")
    with pytest.raises(ProviderError) as err:
        azure_store(azure).put_bytes("k", b"1")
    assert "Storage Blob Data Contributor" in str(err.value)
    with pytest.raises(ProviderError) as err:
        azure_store(azure, access_token=None, sas_token=SAS.replace("fixtureSignature", "forged")).list("")
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
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azure.cert)  # how a private CA reaches requests
    stores = {
        "gcs": {"url": "gs://%s/models" % gcs.bucket, "endpoint_url": gcs.url, "access_token": GCS_TOKEN},
        "azure": {"url": "az://%s/%s/models" % (azure.account, azure.container), "endpoint_url": azure.url,
                  "access_token": AZURE_TOKEN},
    }
    push = {"mode": "push", "name": "tiny", "path": str(model), "store": stores["gcs"],
            "encryption": {"key_file": str(key)}}
    first = run_module(model_artifact.main, push)
    assert first["changed"] and not first.failed, first
    assert run_module(model_artifact.main, push)["changed"] is False
    assert any(n.startswith("models/tiny/manifests/") for n in gcs.objects)
    replicate = {"mode": "replicate", "name": "tiny", "store": stores["gcs"], "target_store": stores["azure"],
                 "encryption": {"key_file": str(key)}}
    copied = run_module(model_artifact.main, replicate)
    assert copied["changed"] and not copied.failed, copied
    assert run_module(model_artifact.main, replicate)["changed"] is False
    assert any(n.startswith("models/tiny/manifests/") for n in azure.blobs)
    dest = tmp_path / "dest"
    pulled = run_module(model_artifact.main, {"mode": "pull", "name": "tiny", "path": str(dest), "store": stores["azure"],
                                              "encryption": {"key_file": str(key)}})
    assert pulled["changed"] and (dest / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
    assert AZURE_TOKEN not in repr(pulled) and GCS_TOKEN not in repr(pulled)
