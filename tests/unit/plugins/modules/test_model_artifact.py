"""model_artifact through the real module: push, pull, verify, and the faults it must survive."""
import hashlib
import os

import pytest

from ansible_collections.llmops.platform.plugins.module_utils import stores
from ansible_collections.llmops.platform.plugins.module_utils.artifact import ArtifactRepository
from ansible_collections.llmops.platform.plugins.module_utils.envelope import FileKeyWrapper
from ansible_collections.llmops.platform.plugins.modules import model_artifact


def write_model(directory, weights=b"w" * 300000, seed=b"0"):
    os.makedirs(os.path.join(directory, "tokenizer"), exist_ok=True)
    files = {"config.json": b'{"hidden_size": 64}', "model.safetensors": weights + seed,
             "tokenizer/tokenizer.json": b'{"vocab": {}}' + seed, "tokenizer/copy.json": b'{"vocab": {}}' + seed}
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(data)
    return files


def tree(directory):
    out = {}
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, directory)] = hashlib.sha256(handle.read()).hexdigest()
    return out


@pytest.fixture
def lab(tmp_path):
    key = tmp_path / "artifact.key"
    key.write_bytes(os.urandom(32))
    model = tmp_path / "model"
    write_model(str(model))
    return {"key": str(key), "model": str(model), "store": str(tmp_path / "store"), "dest": str(tmp_path / "serving" / "model"),
            "tmp": tmp_path}


def args(lab, mode, **extra):
    base = {"mode": mode, "name": "tiny-llama", "store": {"type": "local", "path": lab["store"]},
            "encryption": {"key_file": lab["key"]}}
    if mode != "verify":
        base["path"] = lab["model"] if mode == "push" else lab["dest"]
    base.update(extra)
    return base


def blob_path(lab, version):
    repo = ArtifactRepository(stores.LocalStore(lab["store"]), "tiny-llama", FileKeyWrapper(lab["key"]))
    manifest = repo.read_manifest(version)
    weights = [f for f in manifest["files"] if f["path"] == "model.safetensors"][0]
    return os.path.join(lab["store"], "tiny-llama", "blobs", weights["sha256"])


def test_push_pull_verify_round_trip_is_idempotent(lab, run_module):
    planned = run_module(model_artifact.main, args(lab, "push"), check_mode=True)
    assert planned["changed"] and not os.path.exists(lab["store"])
    pushed = run_module(model_artifact.main, args(lab, "push"))
    assert pushed["changed"] and pushed["blobs_uploaded"] == 3  # two tokenizer files share one content
    assert sorted(pushed["uploaded"] + pushed["skipped"]) == sorted(tree(lab["model"]))
    again = run_module(model_artifact.main, args(lab, "push"))
    assert again["changed"] is False and again["version"] == pushed["version"] and again["uploaded"] == []

    # Nothing readable in the store: every blob is ciphertext.
    for name in os.listdir(os.path.join(lab["store"], "tiny-llama", "blobs")):
        with open(os.path.join(lab["store"], "tiny-llama", "blobs", name), "rb") as handle:
            assert b"hidden_size" not in handle.read() and b"wwww" not in handle.read()

    pulled = run_module(model_artifact.main, args(lab, "pull"))
    assert pulled["changed"] and pulled["version"] == pushed["version"]
    assert tree(lab["dest"]) == tree(lab["model"])
    assert run_module(model_artifact.main, args(lab, "pull"))["changed"] is False

    verified = run_module(model_artifact.main, args(lab, "verify"))
    assert verified["files"] == 4 and verified["changed"] is False


def test_new_version_is_latest_and_old_one_stays_pullable(lab, run_module):
    first = run_module(model_artifact.main, args(lab, "push"))["version"]
    write_model(lab["model"], seed=b"1")
    second = run_module(model_artifact.main, args(lab, "push"))
    assert second["version"] != first and second["skipped"] == ["config.json"]
    assert run_module(model_artifact.main, args(lab, "pull"))["version"] == second["version"]
    old = run_module(model_artifact.main, args(lab, "pull", version=first))
    assert old["changed"] and old["version"] == first


@pytest.mark.parametrize("damage", ["flip", "truncate", "drop_last_chunk"])
def test_corrupt_blob_is_detected_and_never_restored(lab, run_module, damage):
    version = run_module(model_artifact.main, args(lab, "push"))["version"]
    assert run_module(model_artifact.main, args(lab, "pull"))["changed"]
    before = tree(lab["dest"])
    path = blob_path(lab, version)
    with open(path, "rb") as handle:
        data = bytearray(handle.read())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[:-100]
    else:  # cut exactly at a chunk boundary: only the last-chunk flag can catch it
        data = data[:9]  # magic + chunk size, no chunks at all
    with open(path, "wb") as handle:
        handle.write(bytes(data))

    verify = run_module(model_artifact.main, args(lab, "verify"))
    assert verify.failed and "blob" in verify["msg"]
    os.rename(lab["dest"], lab["dest"] + ".keep")
    os.makedirs(lab["dest"])  # an empty dest forces a real pull
    with open(os.path.join(lab["dest"], "previous.bin"), "wb") as handle:
        handle.write(b"the model that was serving")
    pulled = run_module(model_artifact.main, args(lab, "pull"))
    assert pulled.failed
    assert os.listdir(lab["dest"]) == ["previous.bin"], "a failed pull must leave the previous model"
    assert not [n for n in os.listdir(os.path.dirname(lab["dest"])) if "incoming" in n], "staging left behind"
    assert tree(lab["dest"] + ".keep") == before


def test_tampered_manifest_is_rejected(lab, run_module):
    version = run_module(model_artifact.main, args(lab, "push"))["version"]
    manifest = os.path.join(lab["store"], "tiny-llama", "manifests", version + ".json")
    with open(manifest) as handle:
        text = handle.read()
    with open(manifest, "w") as handle:
        handle.write(text.replace('"size": 19', '"size": 20'))
    result = run_module(model_artifact.main, args(lab, "verify", version=version))
    assert result.failed and "failed authentication" in result["msg"]


def test_wrong_key_is_a_clear_error_and_changes_nothing(lab, run_module):
    run_module(model_artifact.main, args(lab, "push"))
    other = lab["tmp"] / "other.key"
    other.write_bytes(os.urandom(32))
    before = tree(lab["store"])
    result = run_module(model_artifact.main, args(lab, "pull", encryption={"key_file": str(other)}))
    assert result.failed and result["msg"].startswith("wrong key") and "nothing was changed" in result["msg"]
    assert not os.path.exists(lab["dest"]) and tree(lab["store"]) == before
    pushed = run_module(model_artifact.main, args(lab, "push", encryption={"key_file": str(other)}))
    assert pushed.failed and tree(lab["store"]) == before


class FlakyStore(stores.LocalStore):
    """A store whose connection drops after `budget` uploads: the interruption under test."""

    def __init__(self, root, budget):
        super(FlakyStore, self).__init__(root)
        self.budget = budget

    def put_file(self, key, path):
        if self.budget == 0:
            raise ConnectionError("connection reset by peer")
        self.budget -= 1
        super(FlakyStore, self).put_file(key, path)


def test_interrupted_push_resumes_and_ends_verified(lab, run_module):
    wrapper = FileKeyWrapper(lab["key"])
    flaky = ArtifactRepository(FlakyStore(lab["store"], budget=1), "tiny-llama", wrapper)
    with pytest.raises(ConnectionError):
        flaky.push(lab["model"])
    assert not os.path.exists(os.path.join(lab["store"], "tiny-llama", "manifests")), "no manifest before all blobs"
    assert run_module(model_artifact.main, args(lab, "verify")).failed  # nothing to verify yet: no version
    resumed = run_module(model_artifact.main, args(lab, "push"))
    assert resumed["changed"] and resumed["blobs_uploaded"] == 2, "only what the interruption left out"
    assert resumed["skipped"] and sorted(resumed["uploaded"] + resumed["skipped"]) == sorted(tree(lab["model"]))
    assert not run_module(model_artifact.main, args(lab, "verify")).failed


def test_versions_are_immutable(lab, run_module):
    run_module(model_artifact.main, args(lab, "push", version="v1"))
    write_model(lab["model"], seed=b"2")
    result = run_module(model_artifact.main, args(lab, "push", version="v1"))
    assert result.failed and result["msg"].startswith("version: version v1 of tiny-llama already exists")


def test_bad_key_file_names_the_field(lab, run_module):
    bad = lab["tmp"] / "short.key"
    bad.write_text("too short")
    result = run_module(model_artifact.main, args(lab, "push", encryption={"key_file": str(bad)}))
    assert result.failed and result["msg"].startswith("encryption.key_file:")


@pytest.mark.parametrize("mode, extra, field", [
    ("push", {"path": None}, "path"),
    ("pull", {"path": ""}, "path"),
    ("replicate", {}, "target_store"),
])
def test_options_a_mode_needs_are_named(lab, run_module, mode, extra, field):
    result = run_module(model_artifact.main, args(lab, mode, **extra))
    assert result.failed and result["msg"] == "%s: is required with mode=%s" % (field, mode)
    assert not os.path.exists(lab["store"]), "nothing was written"


def test_s3_and_kms_end_to_end_against_moto(lab, run_module, aws_backend, monkeypatch):
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(var, value)
    aws_backend.client("s3").create_bucket(Bucket="llmops-artifacts")
    key_arn = aws_backend.client("kms").create_key(Description="llmops artifacts")["KeyMetadata"]["Arn"]
    store = {"type": "s3", "bucket": "llmops-artifacts", "prefix": "models", "region": "us-east-1",
             "endpoint_url": aws_backend.proxy.url}
    encryption = {"kms_key_id": key_arn, "kms_endpoint_url": aws_backend.proxy.url}
    pushed = run_module(model_artifact.main, args(lab, "push", store=store, encryption=encryption))
    assert pushed["changed"], pushed
    keys = [o["Key"] for o in aws_backend.client("s3").list_objects_v2(Bucket="llmops-artifacts")["Contents"]]
    assert "models/tiny-llama/datakey.json" in keys and len([k for k in keys if "/blobs/" in k]) == 3
    assert run_module(model_artifact.main, args(lab, "push", store=store, encryption=encryption))["changed"] is False
    pulled = run_module(model_artifact.main, args(lab, "pull", store=store, encryption=encryption))
    assert pulled["changed"] and tree(lab["dest"]) == tree(lab["model"])
    assert not run_module(model_artifact.main, args(lab, "verify", store=store, encryption=encryption)).failed


def test_replicate_to_another_store_copies_ciphertext_and_verifies(lab, run_module):
    first = run_module(model_artifact.main, args(lab, "push"))["version"]
    write_model(lab["model"], seed=b"9")
    second = run_module(model_artifact.main, args(lab, "push"))["version"]
    standby = {"type": "local", "path": str(lab["tmp"] / "standby-region")}
    planned = run_module(model_artifact.main, args(lab, "replicate", target_store=standby), check_mode=True)
    assert planned["changed"] and sorted(planned["replicated"]) == sorted([first, second])
    assert not os.path.exists(standby["path"])
    done = run_module(model_artifact.main, args(lab, "replicate", target_store=standby))
    assert done["changed"] and sorted(done["replicated"]) == sorted([first, second])
    assert tree(standby["path"]) == tree(lab["store"]), "an exact, still encrypted copy"
    assert run_module(model_artifact.main, args(lab, "replicate", target_store=standby))["changed"] is False
    # The standby store serves a verified pull on its own.
    pulled = run_module(model_artifact.main, dict(args(lab, "pull"), store=standby))
    assert pulled["version"] == second and tree(lab["dest"]) == tree(lab["model"])


def test_replicate_refuses_to_copy_a_corrupt_source(lab, run_module):
    version = run_module(model_artifact.main, args(lab, "push"))["version"]
    path = blob_path(lab, version)
    data = bytearray(open(path, "rb").read())
    data[20] ^= 0xFF
    open(path, "wb").write(bytes(data))
    standby = {"type": "local", "path": str(lab["tmp"] / "standby-region")}
    result = run_module(model_artifact.main, args(lab, "replicate", target_store=standby))
    assert result.failed and "failed authentication" in result["msg"]
    assert not os.path.exists(os.path.join(standby["path"], "tiny-llama", "manifests")), "no version published"
