"""Write what AWX's credential injection puts into a job's private data directory, for our custom types.

Follows AWX's CredentialType.inject_credential (awx/main/models/credential/__init__.py) and the job's
extra-vars file (awx/main/tasks/jobs.py, build_extra_vars_file):
- each `file` injector is rendered with a sandboxed Jinja environment into a temp file under env/, mode
  0600; `tower.filename.<name>` (and `awx.filename.<name>`) is its path inside the EE (/runner/env/...);
  a single unnamed `template` sets `tower.filename` itself;
- `env` injectors go to env/envvars;
- `extra_vars` injectors are rendered and written, marked !unsafe (AWX does not let credential values be
  templated again), to a temp file under env/ passed as `-e @/runner/env/<file>` in env/cmdline.
scripts/ee-run.sh runs a playbook in the EE with such a directory (LLMOPS_EE_CREDENTIALS=INPUTS.yml).

  python3 scripts/awx-inject.py PRIVATE_DATA_DIR INPUTS.yml [CREDENTIAL_TYPES.yml]
INPUTS.yml maps credential type names to their inputs; the types come from playbooks/vars/awx.yml.
Prints the injected variable names, never their values.
"""
import os
import pathlib
import stat
import sys
import tempfile

import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parents[1]
IN_CONTAINER = pathlib.PurePosixPath("/runner")


class _Namespace:
    """The `tower` / `awx` template namespace (tower.filename, tower.filename.<name>)."""


class _Unsafe(str):
    """A value written as !unsafe: Ansible will not template it."""


def _unsafe_representer(dumper, data):
    return dumper.represent_scalar("!unsafe", str(data))


class _Loader(yaml.SafeLoader):
    """Reads awx.yml, whose injector templates are tagged !unsafe for Ansible."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
yaml.SafeDumper.add_representer(_Unsafe, _unsafe_representer)


def credential_types(path=None):
    data = yaml.load((pathlib.Path(path) if path else ROOT / "playbooks" / "vars" / "awx.yml").read_text(),
                     Loader=_Loader)  # nosec: a SafeLoader subclass
    return {ct["name"]: ct for ct in data["awx_credential_types"]}


def _temp_file(env_dir, data):
    handle, path = tempfile.mkstemp(dir=env_dir)
    with os.fdopen(handle, "w") as out:
        out.write(data)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return IN_CONTAINER / "env" / os.path.basename(path)


def inject(ctype, inputs, private_data_dir):
    """(env, extra_vars) of one credential of type ctype, its files written under private_data_dir/env."""
    env_dir = pathlib.Path(private_data_dir) / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    fields = {f["id"]: f for f in ctype["inputs"].get("fields", [])}
    missing = sorted(set(ctype["inputs"].get("required", [])) - set(inputs))
    if missing:
        raise ValueError("%s: required inputs missing: %s" % (ctype["name"], ", ".join(missing)))
    unknown = sorted(set(inputs) - set(fields))
    if unknown:
        raise ValueError("%s: no such inputs: %s (its fields: %s)" % (ctype["name"], ", ".join(unknown),
                                                                      ", ".join(sorted(fields))))
    namespace = {k: inputs.get(k, "") for k in fields}
    tower = _Namespace()
    namespace["tower"] = namespace["awx"] = tower
    sandbox = ImmutableSandboxedEnvironment()
    injectors = ctype.get("injectors", {})
    for label, template in injectors.get("file", {}).items():
        path = str(_temp_file(env_dir, sandbox.from_string(template).render(**namespace)))
        if "." not in label:
            tower.filename = path
        else:
            if not isinstance(getattr(tower, "filename", None), _Namespace):
                tower.filename = _Namespace()
            setattr(tower.filename, label.split(".", 1)[1], path)
    env = {k: sandbox.from_string(v).render(**namespace) for k, v in injectors.get("env", {}).items()}
    extra_vars = {k: sandbox.from_string(v).render(**namespace) for k, v in injectors.get("extra_vars", {}).items()}
    return env, extra_vars


def write(private_data_dir, injected):
    """Merge the injections' env into env/envvars and pass their extra vars as AWX does (env/cmdline)."""
    env_dir = pathlib.Path(private_data_dir) / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    env, extra_vars = {}, {}
    for one_env, one_vars in injected:
        env.update(one_env)
        extra_vars.update(one_vars)
    envvars = env_dir / "envvars"
    current = yaml.safe_load(envvars.read_text()) if envvars.exists() else {}
    current.update(env)
    envvars.write_text(yaml.safe_dump(current))
    if extra_vars:
        path = _temp_file(env_dir, yaml.safe_dump({k: _Unsafe(v) for k, v in extra_vars.items()}))
        (env_dir / "cmdline").write_text("-e @%s" % path)
    return sorted(env), sorted(extra_vars)


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__)
    types = credential_types(argv[2] if len(argv) == 3 else None)
    inputs = yaml.safe_load(pathlib.Path(argv[1]).read_text())
    unknown = sorted(set(inputs) - set(types))
    if unknown:
        sys.exit("no such credential types in awx_credential_types: %s" % ", ".join(unknown))
    env, extra_vars = write(argv[0], [inject(types[name], values, argv[0]) for name, values in inputs.items()])
    print("injected env: %s; extra vars: %s" % (", ".join(env) or "none", ", ".join(extra_vars) or "none"))


if __name__ == "__main__":
    main(sys.argv[1:])
