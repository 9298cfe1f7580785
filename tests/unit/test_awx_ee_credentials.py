"""Credentials as AWX gives them: our custom credential types' injectors, rendered into the private data
directory layout AWX makes (scripts/awx-inject.py), reach a job running in the execution environment, and
every variable they inject is read by the project.

The EE part runs only with LLMOPS_EE_CHECKS=1, set by the e2e stage of scripts/test.sh right after it
built the image from this checkout (scripts/build-ee.sh); the other tests run in the unit stage.
"""
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("LLMOPS_EE_IMAGE", "localhost/llmops/platform-ee:0.1.0")
_spec = importlib.util.spec_from_file_location("awx_inject", ROOT / "scripts" / "awx-inject.py")
awx_inject = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(awx_inject)

# Keys whose string values are whole Jinja expressions without braces.
BARE = {"when", "that", "failed_when", "changed_when", "until"}
JINJA = re.compile(r"{{.*?}}|{%.*?%}", re.S)


class _AnyTag(yaml.SafeLoader):
    """Reads task files whatever their tags (!unsafe, !vault)."""


_AnyTag.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node)
                              if isinstance(node, yaml.ScalarNode) else None)


def _expressions(data, key=None):
    """The Jinja expressions in YAML data: {{ }} / {% %} in any string, whole strings under BARE keys."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _expressions(v, k)
    elif isinstance(data, list):
        for item in data:
            yield from _expressions(item, key)
    elif isinstance(data, str):
        if key in BARE:
            yield data
        yield from JINJA.findall(data)


def readers(variable, root=ROOT):
    """Files of the project that read variable in an expression (a definition or a description is no read)."""
    found = []
    files = [p for d in ("roles", "playbooks", "inventories") for p in (root / d).rglob("*")
             if p.suffix in (".yml", ".yaml", ".j2") and p.is_file()]
    for path in files:
        if path == root / "playbooks" / "vars" / "awx.yml":
            continue  # where the credential types themselves are defined
        text = path.read_text()
        if variable not in text:
            continue
        chunks = JINJA.findall(text) if path.suffix == ".j2" else list(
            _expressions(yaml.load(text, Loader=_AnyTag)))  # nosec: a SafeLoader subclass
        if any(re.search(r"(?<![\w.])%s\b" % re.escape(variable), c) for c in chunks):
            found.append(str(path.relative_to(root)))
    return found


def _injected_variables(types):
    return {(ct["name"], var) for ct in types.values()
            for kind in ("extra_vars", "env") for var in ct.get("injectors", {}).get(kind, {})}


def _inputs(ctype):
    """A distinct dummy value per input; the test looks for each of them where the job receives it."""
    return {f["id"]: "probe-%s-%s\nsecond line" % (re.sub(r"\W", "", ctype["name"]), f["id"])
            for f in ctype["inputs"]["fields"]}


def test_every_injected_variable_is_read_by_the_project():
    types = awx_inject.credential_types()
    assert types, "playbooks/vars/awx.yml defines no credential types"
    unread = sorted("%s: %s" % (name, var) for name, var in _injected_variables(types) if not readers(var))
    assert not unread, ("credential types inject variables no role, playbook or inventory reads (rename the "
                        "injector to the variable that is read, or read it): %s" % unread)


def test_the_reader_check_catches_a_variable_nobody_reads(tmp_path):
    """The check above can fail: a definition or a description alone is not a read."""
    role = tmp_path / "roles" / "r"
    (role / "defaults").mkdir(parents=True)
    (role / "tasks").mkdir()
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "inventories").mkdir()
    (role / "defaults" / "main.yml").write_text("llmops_only_defined: ''\nllmops_read_in_when: ''\n")
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([
        {"name": "Mentions llmops_only_defined in its name", "ansible.builtin.debug": {"msg": "hi"},
         "when": "llmops_read_in_when | length > 0"}]))
    assert readers("llmops_only_defined", tmp_path) == []
    assert readers("llmops_read_in_when", tmp_path) == ["roles/r/tasks/main.yml"]


def test_injection_writes_the_awx_layout(tmp_path):
    types = awx_inject.credential_types()
    model_key = types["LLMOps model encryption key"]
    env, extra_vars = awx_inject.inject(model_key, {"key": "ab" * 32}, tmp_path)
    path = extra_vars["llmops_model_encryption_key_file"]
    assert path.startswith("/runner/env/tmp")
    on_disk = tmp_path / "env" / pathlib.PurePosixPath(path).name
    assert on_disk.read_text() == "ab" * 32 and oct(on_disk.stat().st_mode & 0o777) == "0o600"
    assert extra_vars["llm_serving_weights_key"] == "ab" * 32 and env == {}
    with pytest.raises(ValueError, match="required inputs missing: key"):
        awx_inject.inject(model_key, {}, tmp_path)
    with pytest.raises(ValueError, match="no such inputs: kee"):
        awx_inject.inject(model_key, {"key": "x", "kee": "y"}, tmp_path)


@pytest.mark.skipif(os.environ.get("LLMOPS_EE_CHECKS") != "1" or not shutil.which("podman")
                    or subprocess.run(["podman", "image", "exists", IMAGE], check=False).returncode != 0,
                    reason="needs %s built from this checkout: scripts/build-ee.sh, then LLMOPS_EE_CHECKS=1" % IMAGE)
def test_a_job_in_the_ee_receives_each_credential_as_awx_injects_it(tmp_path):
    types = awx_inject.credential_types()
    pdd = tmp_path / "runner"
    inputs = {name: _inputs(ct) for name, ct in types.items()}
    injected = [awx_inject.inject(ct, inputs[name], pdd) for name, ct in types.items()]
    _env, names = awx_inject.write(pdd, injected)
    (pdd / "env" / "extravars").write_text(yaml.safe_dump({"probe_names": names}))
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "hosts").write_text("localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    # The job's files belong to the user the EE runs jobs as (uid 1000, group 0), as in AWX.
    for path in [pdd, *pdd.rglob("*")]:
        os.chown(path, 1000, 0)
    run = subprocess.run(["podman", "run", "--rm", "-v", "%s:/runner" % pdd, "-v", "%s:/runner/project:ro" % ROOT,
                          IMAGE, "ansible-runner", "run", "/runner", "-p", "tests/ee/credentials_probe.yml"],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    received = json.loads((pdd / "probe.json").read_text())
    for name, ct in types.items():
        for var, template in ct["injectors"].get("extra_vars", {}).items():
            got = received[var]
            field = re.search(r"(?:tower|awx)\.filename\.(\w+)", template)
            if field:  # a file AWX wrote: the job sees its path, owner-only, with the input inside
                assert got["value"].startswith("/runner/env/") and got["mode"] == "0600", (var, got)
                assert got["file"] == inputs[name][field.group(1)], var
            else:
                assert got["value"] == inputs[name][re.search(r"{{\s*(\w+)\s*}}", template).group(1)], var
    # The probe's tasks are no_log: no input appears in the job's output.
    for values in inputs.values():
        for value in values.values():
            assert value.splitlines()[0] not in run.stdout + run.stderr
