"""node_boot_bundle on moto's S3 (real ansible-playbook, real boto3 over HTTP), and the bundle itself.

check mode uploads nothing; a real run uploads an encrypted object whose key carries the content hash; a
second run is changed=0; node_boot_config's EKS user data names exactly that object and hash. Then the
bundle is proved self-contained: a venv made from its wheels alone (no index, no pip config) runs
ansible-playbook with the bundle as the only collections path.
"""
import email
import hashlib
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile

import pytest
import yaml
from recap import changed_per_host

ROOT = pathlib.Path(__file__).resolve().parents[3]
BUCKET = "llmops-boot-test"
GPU_POOL = {"name": "gpu", "count": 1, "gpu": {"type": "nvidia-l4", "count": 1}}


# moto takes any credentials: the last run passes these, at -vvv, and its whole output is searched for them.
SECRET_KEY = "bundle-secret-key-5c1e9a0d7b"
SESSION_TOKEN = "bundle-session-token-3f8e2a6c41"


def play(backend, out, secret_key="testing", session_token=None, **bundle):
    options = {"access_key": "testing", "secret_key": secret_key, "endpoint_url": backend.proxy.url}
    if session_token:
        options["session_token"] = session_token
    return [{"hosts": "localhost", "gather_facts": False,
             "vars": {"llmops_cluster": {"provider": "aws", "name": "bundle", "region": "us-east-1", "node_pools": [GPU_POOL],
                                         "provider_options": options},
                      "llmops_boot_bundle": dict({"bucket": BUCKET, "create_bucket": True}, **bundle)},
             "roles": ["llmops.platform.node_boot_bundle", "llmops.platform.node_boot_config"],
             "tasks": [{"ansible.builtin.copy": {"content": "{{ {'uri': node_boot_config_aws_bundle_s3_uri, "
                                                            "'sha256': node_boot_config_aws_bundle_sha256, "
                                                            "'pools': node_boot_config_pools} | to_json }}",
                                                 "dest": str(out), "mode": "0600"}, "check_mode": False,
                        "changed_when": False}]}]


def playbook(path, *args, **env):
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(path),
                           "-e", "ansible_python_interpreter=%s" % sys.executable] + list(args),
                          capture_output=True, text=True, cwd=str(ROOT), env=dict(os.environ, **env), check=False)


def boot_files(out):
    """The files the GPU pool's EKS user data writes (cloud-config part), by path."""
    user_data = out["pools"][0]["node_config"]["user_data"]
    parts = {p.get_content_type(): p.get_payload() for p in email.message_from_string(user_data).get_payload()}
    return {f["path"]: f["content"] for f in yaml.safe_load(parts["text/cloud-config"])["write_files"]}


def changed(run):
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    return changed_per_host(run.stdout)["localhost"]


@pytest.fixture(scope="module")
def runs(aws_backend, tmp_path_factory):
    """check, real, again: (changed counts, outputs, the downloaded bundle)."""
    work = tmp_path_factory.mktemp("bundle")
    cache = tmp_path_factory.getbasetemp() / "wheel-cache"  # one pip download per test session
    s3 = aws_backend.client("s3")
    results = {}
    for name, args in (("check", ["--check"]), ("real", []), ("again", ["-vvv"])):
        out = work / (name + ".json")
        secrets = {"secret_key": SECRET_KEY, "session_token": SESSION_TOKEN} if name == "again" else {}
        (work / "play.yml").write_text(yaml.safe_dump(play(aws_backend, out, **secrets)))
        run = playbook(work / "play.yml", "-e", "node_boot_bundle_cache_dir=%s" % cache, *args)
        results[name] = {"changed": changed(run), "out": json.loads(out.read_text()), "stdout": run.stdout,
                         "stderr": run.stderr}
        if name == "check":
            assert BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]], "check mode created the bucket"
    key = results["real"]["out"]["uri"].split("/", 3)[3]
    data = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    (work / "bundle.tar.gz").write_bytes(data)
    return results, work / "bundle.tar.gz", key


def test_check_mode_uploads_nothing_and_names_the_same_key(runs):
    results, key = runs[0], runs[2]
    assert results["check"]["out"]["uri"] == results["real"]["out"]["uri"] == "s3://%s/%s" % (BUCKET, key)
    assert "would be created" in results["check"]["stdout"]


def test_real_run_uploads_an_encrypted_object_named_by_its_hash(runs, aws_backend):
    results, bundle, key = runs
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert results["real"]["out"]["sha256"] == digest
    assert key == "llmops/boot-bundle/bundle-%s.tar.gz" % digest[:16]
    assert results["real"]["changed"] > 0
    s3 = aws_backend.client("s3")
    assert s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block[k] for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"))
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]}
    assert tags["llmops.io/managed-by"] == "llmops.platform"


def test_second_run_changes_nothing_and_keeps_the_hash(runs, aws_backend):
    results, key = runs[0], runs[2]
    assert results["again"]["changed"] == 0
    assert results["again"]["out"]["uri"] == results["real"]["out"]["uri"], "the bundle is not reproducible"
    listed = aws_backend.client("s3").list_object_versions(Bucket=BUCKET)["Versions"]
    assert [v["Key"] for v in listed] == [key], "one upload only"


def test_user_data_fetches_exactly_that_object_and_hash(runs):
    results, key = runs[0], runs[2]
    out = results["real"]["out"]
    script = boot_files(out)["/etc/llmops/boot/first-boot.sh"]
    assert "aws s3 cp s3://%s/%s /opt/llmops/bundle.tar.gz" % (BUCKET, key) in script
    assert '"%s  /opt/llmops/bundle.tar.gz" | sha256sum -c -' % out["sha256"] in script
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0


def test_the_node_refuses_a_tampered_bundle(runs, tmp_path):
    """The user data's own verification line, pointed at a local copy: it passes the bundle, fails a tampered one."""
    results, bundle = runs[0], runs[1]
    script = boot_files(results["real"]["out"])["/etc/llmops/boot/first-boot.sh"]
    line = [x for x in script.splitlines() if "sha256sum -c" in x][0]
    check = line.split(" || ")[0].replace("/opt/llmops/bundle.tar.gz", str(tmp_path / "b.tgz")).replace(' >>"$LOG" 2>&1', "")
    data = bytearray(bundle.read_bytes())
    (tmp_path / "b.tgz").write_bytes(bytes(data))
    assert subprocess.run(["sh", "-c", check], capture_output=True, check=False).returncode == 0
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "b.tgz").write_bytes(bytes(data))
    assert subprocess.run(["sh", "-c", check], capture_output=True, check=False).returncode != 0


def test_bundle_is_reproducible_and_holds_only_what_the_node_needs(runs):
    bundle = runs[1]
    with tarfile.open(bundle) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and not m.uname and not m.gname for m in members)
    tops = set(n.split("/")[0] for n in names)
    assert tops == {"ansible_collections", "wheels"}
    platform = set(n.split("/")[3] for n in names if n.startswith("ansible_collections/llmops/platform/"))
    assert platform == {"LICENSE", "meta", "plugins", "roles"}
    roles = set(n.split("/")[4] for n in names if n.startswith("ansible_collections/llmops/platform/roles/"))
    assert roles == {"common", "node_hardening", "nvidia_gpu"}  # common: the tasks node_hardening imports
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n]
    collections = set("/".join(n.split("/")[1:3]) for n in names if n.count("/") >= 3 and n.startswith("ansible_collections/"))
    assert collections == {"llmops/platform", "community/general", "ansible/posix"}


def test_node_pins_are_the_controllers_and_carry_hashes():
    """The node runs the ansible-core the controller pins (and the same cryptography), every requirement is
    pinned to one version with at least one wheel hash, so pip download --require-hashes checks each file."""
    controller = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "requirements" / "controller.txt").read_text(), re.M))
    text = (ROOT / "roles" / "node_boot_bundle" / "files" / "node-requirements.txt").read_text()
    entries = [e for e in re.split(r"\n(?=[A-Za-z])", "\n".join(
        line for line in text.splitlines() if not line.startswith("#"))) if e.strip()]
    node = {}
    for entry in entries:
        name, version = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", entry).groups()
        assert re.findall(r"--hash=sha256:[0-9a-f]{64}", entry), "%s has no wheel hash" % name
        node[name.lower()] = version
    assert node["ansible-core"] == controller["ansible-core"]
    assert node["cryptography"] == controller["cryptography"]
    assert {"jinja2", "pyyaml", "markupsafe", "packaging", "resolvelib"} <= set(node)


def used_modules():
    """Every module FQCN the node roles' task files call (except ansible.builtin, which ansible-core has)."""
    found = set()

    def walk(tasks):
        for task in tasks or []:
            for key, value in task.items():
                if key in ("block", "rescue", "always"):
                    walk(value)
                elif re.match(r"^[a-z_]+\.[a-z_]+\.[a-z_0-9]+$", key) and not key.startswith("ansible.builtin."):
                    found.add(key)
    for role in ("common", "node_hardening", "nvidia_gpu"):
        for path in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            walk(yaml.safe_load(path.read_text()))
    return sorted(found)


def test_bundle_is_self_contained(runs, tmp_path):
    """Only the bundle: a venv from its wheels (no index, no pip config), its collections as the only path."""
    results, bundle = runs[0], runs[1]
    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "bundle", filter="data")
    clean = dict((k, v) for k, v in os.environ.items() if not k.startswith(("PIP_", "ANSIBLE_", "VIRTUAL_ENV")))
    clean.update(PIP_CONFIG_FILE=os.devnull, HOME=str(tmp_path), PATH="/usr/bin:/bin")
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", str(venv)], check=True, env=clean)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links",
                          str(tmp_path / "bundle" / "wheels"), "ansible-core"], capture_output=True, text=True, env=clean, check=False)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # not the checkout's (its collections_path)
    env = dict(clean, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "bundle"), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_HOME=str(tmp_path / ".ansible"), ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_NOCOLOR="1")

    def run(path, *args):
        done = subprocess.run([str(venv / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(path)] + list(args),
                              capture_output=True, text=True, cwd=str(tmp_path), env=env, check=False)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
        return done.stdout

    # The boot play exactly as the GPU pool's user data writes it.
    (tmp_path / "node.yml").write_text(boot_files(results["real"]["out"])["/etc/llmops/boot/node.yml"])
    run(tmp_path / "node.yml", "--syntax-check")
    # Every module the roles' task files call resolves from the bundle (syntax-check resolves each action).
    modules = used_modules()
    assert {"community.general.ini_file", "ansible.posix.mount", "llmops.platform.gpu_facts"} <= set(modules)
    (tmp_path / "modules.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                                           "tasks": [{m: {}} for m in modules]}]))
    run(tmp_path / "modules.yml", "--syntax-check")
    # And they run: one module of each bundled collection, in check mode, on scratch files.
    (tmp_path / "fstab").write_text("")
    checks = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"community.general.ini_file": {"path": str(tmp_path / "x.ini"), "section": "s", "option": "o", "value": "v"}},
        {"ansible.posix.mount": {"path": "/mnt/llmops-test", "src": "tmpfs", "fstype": "tmpfs", "state": "present",
                                 "fstab": str(tmp_path / "fstab")}},
        {"llmops.platform.gpu_facts": {}}]}]
    (tmp_path / "checks.yml").write_text(yaml.safe_dump(checks))
    out = run(tmp_path / "checks.yml", "--check", "-e", "ansible_python_interpreter=%s" % (venv / "bin" / "python"))
    assert "failed=0" in out and "ok=3" in out


def test_uri_without_a_valid_sha256_is_refused(tmp_path):
    for value in ("", "x" * 64, "AB" * 32):
        out = tmp_path / "out.json"
        (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                                            "vars": {"llmops_cluster": {"provider": "aws", "name": "c", "node_pools": [GPU_POOL]}},
                                                            "roles": ["llmops.platform.node_boot_config"]}]))
        run = playbook(tmp_path / "play.yml", "-e", "node_boot_config_aws_bundle_s3_uri=s3://b/k.tar.gz",
                       "-e", json.dumps({"node_boot_config_aws_bundle_sha256": value}))
        assert run.returncode != 0 and not out.exists()
        assert "node_boot_config_aws_bundle_sha256 must be the bundle's sha256" in run.stdout, run.stdout[-2000:]


def test_bad_bucket_is_named(aws_backend, tmp_path):
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play(aws_backend, tmp_path / "o.json", bucket="Bad_Bucket")))
    run = playbook(tmp_path / "play.yml")
    assert run.returncode != 0
    assert "node_boot_bundle_bucket (llmops_boot_bundle.bucket) must be an S3 bucket name" in run.stdout


def test_credentials_never_appear_in_verbose_output(runs):
    """The run at -vvv prints every module invocation (the S3 calls included) and never the credentials."""
    again = runs[0]["again"]
    output = again["stdout"] + again["stderr"]
    assert "AnsiballZ_s3_object.py" in output and "module_args:" in output, "the invocations were not printed"
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output  # the key reached the modules, masked
    assert SECRET_KEY not in output and SESSION_TOKEN not in output
