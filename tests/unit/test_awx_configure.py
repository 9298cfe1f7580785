"""playbooks/awx_configure.yml without a controller: every argument it would send, checked against the
argument specs of the awx.awx collection installed in the venv.

How "what it would send" is known exactly: the playbook's render step (`--tags render`) writes
`awx_objects`, the list of argument dicts per object kind, and every awx.awx task passes `item.<option>`
through under the same option name (checked here by reading the playbook), so a rendered dict is the
module's argument set. The argument specs are not copied: each awx.awx module's own main() is run until
it builds its AnsibleModule, and the spec it passes (with mutually_exclusive / required_if) is captured
and applied with ansible-core's ModuleArgumentSpecValidator, as the module would at run time.
"""
import copy
import json
import pathlib
import re
import subprocess

import pytest
import yaml
from dateutil import rrule as dateutil_rrule

from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator

from module_specs import capture_spec

ROOT = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "playbooks" / "awx_configure.yml"
VARS = ROOT / "playbooks" / "vars" / "awx.yml"

# Object kind in awx_objects -> awx.awx module that creates it.
KIND_MODULE = {
    "organizations": "organization",
    "execution_environments": "execution_environment",
    "credential_types": "credential_type",
    "credentials": "credential",
    "projects": "project",
    "inventories": "inventory",
    "inventory_sources": "inventory_source",
    "notification_templates": "notification_template",
    "job_templates": "job_template",
    "workflow_job_templates": "workflow_job_template",
    "workflow_job_template_nodes": "workflow_job_template_node",
    "schedules": "schedule",
}
# Credential types every AWX ships (managed types), which credentials may use without defining them.
AWX_MANAGED_CREDENTIAL_TYPES = {
    "Machine", "Source Control", "Vault", "Amazon Web Services", "Google Compute Engine",
    "Microsoft Azure Resource Manager", "Container Registry", "Red Hat Ansible Automation Platform",
}
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
# The spec types and the Python types a value must already have (no silent coercion of "true" or "5").
PY_TYPES = {"str": str, "path": str, "dict": dict, "list": list, "bool": bool, "int": int, "float": (int, float)}
ITEM_ARG = re.compile(r"^\{\{ item\.(\w+)( \| default\(omit\))? \}\}$")
DUMMY_SECRET = "dummy-secret-6c1f0e"


@pytest.fixture(scope="module")
def specs():
    return {module: capture_spec("awx.awx", module) for module in KIND_MODULE.values()}


@pytest.fixture(scope="module")
def doc_options():
    """Documented options (ansible-doc) per module: used only for dict options whose spec has no suboptions."""
    out = subprocess.run(["ansible-doc", "--json"] + ["awx.awx.%s" % m for m in KIND_MODULE.values()],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {name.split(".")[-1]: doc["doc"]["options"] for name, doc in json.loads(out).items()}


def _render(tmp_path, name, extra=None):
    dest = tmp_path / ("%s.json" % name)
    cmd = ["ansible-playbook", str(PLAYBOOK), "--tags", "render", "-e", "awx_render_file=%s" % dest]
    if extra is not None:
        extra_file = tmp_path / ("%s-vars.json" % name)
        extra_file.write_text(json.dumps(extra))
        cmd += ["-e", "@%s" % extra_file]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(dest.read_text()), run.stdout + run.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render twice: without credential inputs (nothing secret is created), then with dummy inputs for
    every credential the first render said it would need (the full set of objects)."""
    tmp_path = tmp_path_factory.mktemp("awx-render")
    bare, dummy_out = _render(tmp_path, "bare")
    inputs = {name: {"key": DUMMY_SECRET} for name in bare["credentials_not_managed"]}
    full, output = _render(tmp_path, "full", {"awx_credential_inputs": inputs})
    again, dummy_out = _render(tmp_path, "again", {"awx_credential_inputs": inputs})
    return {"bare": bare, "full": full, "again": again, "output": output, "inputs": inputs}


@pytest.fixture(scope="module")
def playbook_tasks():
    play = yaml.safe_load(PLAYBOOK.read_text())[0]
    return play, [t for t in play["tasks"] if any(k.startswith("awx.awx.") for k in t)]


def _task_kind_and_keys(task):
    action = next(k for k in task if k.startswith("awx.awx."))
    match = re.fullmatch(r"\{\{ awx_objects\.(\w+) \}\}", task["loop"])
    assert match, "task %r must loop over awx_objects.<kind>, not %r" % (task["name"], task["loop"])
    return match.group(1), action.split(".")[-1], task[action]


def check_args(args, spec_kwargs, doc_opts):
    """Errors of one module call's arguments, as the module would validate them, plus stricter checks:
    values already of the spec's type, list elements too, and keys of dict options whose spec leaves
    them open checked against the documented suboptions. Returns a list of messages (empty = valid)."""
    kwargs = {k: v for k, v in spec_kwargs.items() if k not in ("argument_spec", "supports_check_mode")}
    spec = spec_kwargs["argument_spec"]
    errors = [str(e).split(". Supported parameters", maxsplit=1)[0]
              for e in ModuleArgumentSpecValidator(spec, **kwargs).validate(copy.deepcopy(args)).errors]
    for key, value in args.items():
        option = spec.get(key)
        if option is None:
            continue  # reported above as unsupported
        expected = PY_TYPES.get(option.get("type", "str"))
        if value is None or (expected and (not isinstance(value, expected) or
                                           (expected is int and isinstance(value, bool)))):
            errors.append("%s: %r is not of type %s" % (key, value, option.get("type", "str")))
        if isinstance(value, list) and option.get("elements") in PY_TYPES:
            errors += ["%s[%d]: %r is not of type %s" % (key, i, v, option["elements"])
                       for i, v in enumerate(value) if not isinstance(v, PY_TYPES[option["elements"]])]
        if isinstance(value, dict) and option.get("type") == "dict" and not option.get("options"):
            documented = (doc_opts.get(key) or {}).get("suboptions")
            if documented:
                errors += ["%s.%s: not a documented suboption (%s)" % (key, sub, ", ".join(sorted(documented)))
                           for sub in value if sub not in documented]
                errors += ["%s.%s: required suboption missing" % (key, sub)
                           for sub, d in documented.items() if d.get("required") and sub not in value]
    return errors


# --- the playbook passes rendered arguments through unchanged ------------------------------------------

def test_every_awx_task_passes_rendered_options_unchanged(playbook_tasks):
    dummy_play, tasks = playbook_tasks
    kinds = set()
    for task in tasks:
        kind, module, args = _task_kind_and_keys(task)
        assert KIND_MODULE.get(kind) == module, "%s loops over %s but calls awx.awx.%s" % (task["name"], kind, module)
        kinds.add(kind)
        for option, template in args.items():
            match = ITEM_ARG.match(str(template))
            assert match and match.group(1) == option, (
                "%s: option %s must be passed as '{{ item.%s }}' (optionally '| default(omit)'), not %r"
                % (task["name"], option, option, template))
    assert kinds == set(KIND_MODULE), "object kinds without a task: %s" % (set(KIND_MODULE) - kinds)


def test_rendered_objects_carry_only_options_their_task_passes(rendered, playbook_tasks):
    dummy_play, tasks = playbook_tasks
    passed = {}
    for task in tasks:
        kind, dummy_keys, args = _task_kind_and_keys(task)
        passed[kind] = args
    for kind, objects in rendered["full"]["objects"].items():
        assert objects, "nothing rendered for %s" % kind
        for obj in objects:
            dropped = set(obj) - set(passed[kind])
            assert not dropped, "%s %s: rendered options the task never sends: %s" % (kind, _name(obj), dropped)
            required = {k for k, v in passed[kind].items() if "default(omit)" not in v}
            assert required <= set(obj), "%s %s lacks %s" % (kind, _name(obj), required - set(obj))


def test_connection_defaults_are_options_of_every_module(playbook_tasks, specs):
    play, dummy_tasks = playbook_tasks
    defaults = play["module_defaults"]["group/awx.awx.controller"]
    for module, spec in specs.items():
        assert set(defaults) <= set(spec["argument_spec"]), module
    assert spec["argument_spec"]["controller_oauthtoken"].get("no_log"), "the token must be no_log in awx.awx"


# --- every argument against the installed awx.awx argument specs ---------------------------------------

def test_every_rendered_call_is_valid_for_the_installed_awx_modules(rendered, specs, doc_options):
    problems = []
    count = 0
    for kind, objects in rendered["full"]["objects"].items():
        module = KIND_MODULE[kind]
        for obj in objects:
            count += 1
            problems += ["awx.awx.%s %s: %s" % (module, _name(obj), e)
                         for e in check_args(obj, specs[module], doc_options[module])]
    assert not problems, "\n".join(problems)
    assert count > 100  # 12 kinds x 9 targets: a render that lost its loops would be much smaller


def test_a_misspelled_option_or_wrong_type_is_caught(rendered, specs, doc_options):
    """The checker itself can fail: a typo, a string where a dict belongs, a bad choice, a missing
    required option and an undocumented approval suboption are each reported."""
    jt = dict(rendered["full"]["objects"]["job_templates"][0])
    assert not check_args(jt, specs["job_template"], doc_options["job_template"])
    typo = dict(jt, survey_enbled=True)
    assert any("survey_enbled" in e for e in check_args(typo, specs["job_template"], doc_options["job_template"]))
    as_text = dict(jt, survey_spec=json.dumps(jt["survey_spec"]))
    assert any("survey_spec" in e for e in check_args(as_text, specs["job_template"], doc_options["job_template"]))
    bad_choice = dict(jt, job_type="deploy")
    assert any("job_type" in e for e in check_args(bad_choice, specs["job_template"], doc_options["job_template"]))
    nameless = {k: v for k, v in jt.items() if k != "name"}
    assert any("name" in e for e in check_args(nameless, specs["job_template"], doc_options["job_template"]))
    node = next(n for n in rendered["full"]["objects"]["workflow_job_template_nodes"] if "approval_node" in n)
    bad_node = dict(node, approval_node=dict(node["approval_node"], timout=5))
    node_spec, node_doc = specs["workflow_job_template_node"], doc_options["workflow_job_template_node"]
    assert any("timout" in e for e in check_args(bad_node, node_spec, node_doc))
    both = dict(node, unified_job_template="llmops report")
    assert any("mutually exclusive" in e for e in check_args(both, node_spec, node_doc))


# --- what AWX itself would reject, and references between objects --------------------------------------

def _name(obj):
    return obj.get("name") or "%s/%s" % (obj.get("workflow_job_template"), obj.get("identifier"))


def test_names_are_unique_and_every_reference_resolves(rendered):
    objs = rendered["full"]["objects"]
    names = {kind: [o["name"] for o in objs[kind]] for kind in objs if kind != "workflow_job_template_nodes"}
    for kind, values in names.items():
        assert len(values) == len(set(values)), "duplicate %s names" % kind
    org = names["organizations"][0]
    ee = set(names["execution_environments"])
    creds = set(names["credentials"]) | set(rendered["full"]["credentials_not_managed"])
    inventories, jts = set(names["inventories"]), set(names["job_templates"])
    notes = set(names["notification_templates"])
    assert rendered["full"]["credentials_not_managed"] == []
    for kind, objects in objs.items():
        for obj in objects:
            assert obj.get("organization", org) == org
            assert obj.get("lookup_organization", org) == org
            assert set(obj.get("credentials", [])) <= creds, _name(obj)
            assert obj.get("credential", next(iter(creds))) in creds, _name(obj)
            assert obj.get("inventory", next(iter(inventories))) in inventories, _name(obj)
            for key in ("execution_environment", "default_environment"):
                assert obj.get(key, next(iter(ee))) in ee, _name(obj)
            for key in ("notification_templates_error", "notification_templates_approvals"):
                assert set(obj.get(key, [])) <= notes, _name(obj)
            if "unified_job_template" in obj:
                assert obj["unified_job_template"] in jts, _name(obj)
            if "project" in obj or "source_project" in obj:
                assert obj.get("project", obj.get("source_project")) in names["projects"]
    custom_types = set(names["credential_types"])
    for cred in objs["credentials"]:
        assert cred["credential_type"] in custom_types | AWX_MANAGED_CREDENTIAL_TYPES, cred["name"]
        assert cred["update_secrets"] is False, "update_secrets true makes every run report changed"


def test_one_inventory_per_cloud_and_environment_from_the_repository_files(rendered):
    objs = rendered["full"]["objects"]
    expected = {"llmops-%s-%s" % (c, e) for c in ("aws", "gcp", "azure") for e in ("dev", "staging", "prod")}
    assert {i["name"] for i in objs["inventories"]} == expected
    configs = {"aws": "aws_ec2.yml", "gcp": "gcp.gcp_compute.yml", "azure": "azure_rm.yml"}
    for source in objs["inventory_sources"]:
        assert source["source"] == "scm"
        assert (ROOT / source["source_path"]).is_file(), \
            "%s: no %s in the repository" % (source["name"], source["source_path"])
        cloud = source["inventory"].split("-")[1]
        if source["name"].endswith(" nodes"):
            assert source["source_path"].endswith("/" + configs[cloud])
            assert yaml.safe_load((ROOT / source["source_path"]).read_text())["plugin"]
            assert source["credential"] == source["inventory"], "the nodes source needs the cloud credential"
    by_inventory = {}
    for source in objs["inventory_sources"]:
        by_inventory.setdefault(source["inventory"], []).append(source["source_path"].rsplit("/", 1)[1])
    assert all(len(files) == 2 and "hosts.yml" in files for files in by_inventory.values()), by_inventory


def _check_survey(spec, where):
    assert set(spec) == {"name", "description", "spec"} and spec["spec"], where
    variables = [q["variable"] for q in spec["spec"]]
    assert len(variables) == len(set(variables)), where
    for q in spec["spec"]:
        at = "%s: %s" % (where, q.get("variable"))
        assert q["type"] in SURVEY_TYPES, at
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", q["variable"]), at
        assert q["question_name"] and isinstance(q["required"], bool), at
        if q["type"] in ("multiplechoice", "multiselect"):
            assert isinstance(q["choices"], list) and q["choices"], at
            assert q["default"] in q["choices"] + [""], at
        else:
            assert "choices" not in q, at
            assert isinstance(q["min"], int) and isinstance(q["max"], int) and q["min"] <= q["max"], at
            if q["type"] == "integer" and q["default"] != "":
                assert isinstance(q["default"], int) and q["min"] <= q["default"] <= q["max"], at
            if q["type"] in ("text", "textarea") and q["default"] != "":
                assert q["min"] <= len(q["default"]) <= q["max"], at
        assert q["type"] != "password", "%s: password answers are $encrypted$ and break idempotence" % at


def test_job_templates_cover_every_lifecycle_playbook_with_surveys(rendered):
    jts = rendered["full"]["objects"]["job_templates"]
    playbooks = {jt["playbook"] for jt in jts}
    lifecycle = {"site", "foundations", "provision", "cluster_baseline", "baseline", "harden", "monitoring", "logging",
                 "deploy_serving", "report", "teardown", "backup", "restore", "dr_failover", "dr_drill"}
    assert {"playbooks/%s.yml" % p for p in lifecycle} <= playbooks
    variables = set()
    for jt in jts:
        assert jt["survey_enabled"] is ("survey_spec" in jt), jt["name"]
        if "survey_spec" in jt:
            _check_survey(jt["survey_spec"], jt["name"])
            variables |= {q["variable"] for q in jt["survey_spec"]["spec"]}
        assert jt["ask_inventory_on_launch"] and jt["ask_credential_on_launch"], jt["name"]
    assert {"llmops_confirm_environment", "llm_serving_model_version", "llmops_gpu_node_count",
            "llmops_teardown_confirm", "llmops_foundation_confirm", "llmops_cluster_baseline_steps"} <= variables
    # cluster_baseline.yml: a person chooses the steps; the default is a valid choice
    baseline = next(jt for jt in jts if jt["playbook"] == "playbooks/cluster_baseline.yml")
    steps = next(q for q in baseline["survey_spec"]["spec"] if q["variable"] == "llmops_cluster_baseline_steps")
    assert steps["type"] == "multiplechoice" and steps["default"] in steps["choices"]
    # foundations.yml creates only when confirmed; in the workflow the question must not block the launch
    foundations = next(jt for jt in jts if jt["playbook"] == "playbooks/foundations.yml")
    confirm = next(q for q in foundations["survey_spec"]["spec"] if q["variable"] == "llmops_foundation_confirm")
    assert not confirm["required"] and confirm["default"] == ""
    teardown = next(jt for jt in jts if jt["playbook"] == "playbooks/teardown.yml")
    confirm = next(q for q in teardown["survey_spec"]["spec"] if q["variable"] == "llmops_teardown_confirm")
    assert confirm["required"] and confirm["min"] >= 1
    for wf in rendered["full"]["objects"]["workflow_job_templates"]:
        _check_survey(wf["survey_spec"], wf["name"])


def test_credential_types_inject_only_their_own_fields(rendered):
    for ctype in rendered["full"]["objects"]["credential_types"]:
        assert ctype["kind"] in ("cloud", "net"), "custom credential types must be cloud or net"
        fields = {f["id"] for f in ctype["inputs"]["fields"]}
        assert set(ctype["inputs"]["required"]) <= fields
        assert all(f["type"] in ("string", "boolean") for f in ctype["inputs"]["fields"])
        assert all(f.get("secret") for f in ctype["inputs"]["fields"]), "%s: every input is a secret" % ctype["name"]
        assert set(ctype["injectors"]) <= {"env", "extra_vars", "file"}
        files = {k.split(".", 1)[1] for k in ctype["injectors"].get("file", {})}
        assert all(k.startswith("template.") for k in ctype["injectors"].get("file", {}))
        for section, values in ctype["injectors"].items():
            for value in values.values():
                for ref in re.findall(r"\{\{\s*([\w.]+)\s*\}\}", value):
                    ok = ref in fields if not ref.startswith("tower.filename.") else ref.split(".")[2] in files
                    assert ok, "%s: injector %s refers to %s, which is not an input" % (ctype["name"], section, ref)
        for var, value in ctype["injectors"].get("extra_vars", {}).items():
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var) and isinstance(value, str), (ctype["name"], var)
        assert "env" not in ctype["injectors"], "%s: secrets in environment variables reach child processes" % (
            ctype["name"])


def test_workflow_runs_the_lifecycle_with_failure_paths(rendered):
    nodes = rendered["full"]["objects"]["workflow_job_template_nodes"]
    jt_playbook = {jt["name"]: jt for jt in rendered["full"]["objects"]["job_templates"]}
    workflows = {wf["name"] for wf in rendered["full"]["objects"]["workflow_job_templates"]}
    assert len(workflows) == 9
    for wf in workflows:
        own = [n for n in nodes if n["workflow_job_template"] == wf]
        ids = [n["identifier"] for n in own]
        assert len(ids) == len(set(ids)), wf
        created = set()
        for node in own:  # children first: every linked node exists when its parent links to it
            for edge in ("success_nodes", "failure_nodes", "always_nodes"):
                assert set(node[edge]) <= created, \
                    "%s: %s links to %s before it exists" % (wf, node["identifier"], node[edge])
            created.add(node["identifier"])
        by_id = {n["identifier"]: n for n in own}

        def playbook(node_id):
            jt = jt_playbook[by_id[node_id]["unified_job_template"]]
            return jt["playbook"].split("/")[-1], jt.get("job_tags")

        # Walk the success path from the root (the node nobody links to).
        linked = {c for n in own for e in ("success_nodes", "failure_nodes", "always_nodes") for c in n[e]}
        (root,) = set(ids) - linked
        path, node = [], root
        while True:
            if "unified_job_template" in by_id[node]:
                path.append(playbook(node))
            if not by_id[node]["success_nodes"]:
                break
            (node,) = by_id[node]["success_nodes"]
        assert path == [("foundations.yml", None), ("provision.yml", None), ("foundations.yml", None),
                        ("cluster_baseline.yml", None), ("baseline.yml", None), ("harden.yml", None),
                        ("monitoring.yml", None), ("logging.yml", None), ("deploy_serving.yml", None),
                        ("deploy_serving.yml", "smoke")], (wf, path)
        for node_id in ("foundations", "provision", "cluster_identity", "cluster_baseline", "harden", "deploy"):
            assert by_id[node_id]["failure_nodes"], "%s: %s has no failure path" % (wf, node_id)
        assert playbook(by_id["smoke_test"]["failure_nodes"][0]) == ("deploy_serving.yml", "rollback")
        # prod deploys wait for a person: logging -> approval -> deploy
        assert ("deploy_approval" in by_id) == ("-prod " in wf), wf
        if "deploy_approval" in by_id:
            assert by_id["logging"]["success_nodes"] == ["deploy_approval"]
            assert by_id["deploy_approval"]["success_nodes"] == ["deploy"]


def test_schedules_nightly_backup_and_weekly_drill(rendered):
    schedules = rendered["full"]["objects"]["schedules"]
    jts = {jt["name"]: jt for jt in rendered["full"]["objects"]["job_templates"]}
    seen = set()
    for sched in schedules:
        dtstart, rule = sched["rrule"].split(" ", 1)
        assert dtstart.startswith("DTSTART;TZID=UTC:") and rule.startswith("RRULE:"), sched["name"]
        parsed = dateutil_rrule.rrulestr(sched["rrule"].replace(" ", "\n"))
        assert parsed[0].tzinfo is not None, sched["name"]
        playbook = jts[sched["unified_job_template"]]["playbook"]
        freq = re.search(r"FREQ=(\w+)", rule).group(1)
        seen.add((playbook, freq))
        # A schedule must answer the template's required survey questions itself.
        required = {q["variable"] for q in jts[sched["unified_job_template"]]["survey_spec"]["spec"] if q["required"]}
        assert required <= set(sched["extra_data"]), sched["name"]
        assert sched["extra_data"]["llmops_confirm_environment"] in sched["inventory"]
    assert ("playbooks/backup.yml", "DAILY") in seen and ("playbooks/dr_drill.yml", "WEEKLY") in seen


def test_failures_notify(rendered):
    objs = rendered["full"]["objects"]
    for obj in objs["job_templates"] + objs["workflow_job_templates"]:
        assert obj["notification_templates_error"], obj["name"]
    for note in objs["notification_templates"]:
        conf = note["notification_configuration"]
        # awx.awx cannot compare secret fields it reads back as $encrypted$: they would change every run.
        assert not conf.get("password") and not conf.get("token"), note["name"]


# --- secrets and idempotence ---------------------------------------------------------------------------

def test_secrets_stay_out_of_output_and_render_file(rendered, playbook_tasks):
    assert DUMMY_SECRET not in rendered["output"]
    assert DUMMY_SECRET not in json.dumps(rendered["full"])
    creds = rendered["full"]["objects"]["credentials"]
    assert creds and all(set(c["inputs"].values()) == {"<masked>"} for c in creds)
    dummy_play, tasks = playbook_tasks
    for task in tasks:
        if "awx.awx.credential" in task or "awx.awx.notification_template" in task:
            assert task.get("no_log") is True, task["name"]


def test_render_is_deterministic_and_complete_without_secrets(rendered):
    assert rendered["full"] == rendered["again"]
    bare = rendered["bare"]
    assert bare["objects"]["credentials"] == []
    assert {k: v for k, v in bare["objects"].items() if k != "credentials"} == \
        {k: v for k, v in rendered["full"]["objects"].items() if k != "credentials"}
    for node in rendered["full"]["objects"]["workflow_job_template_nodes"]:
        # All three link lists always sent: a rerun converges to exactly the declared graph.
        assert all(isinstance(node[e], list) for e in ("success_nodes", "failure_nodes", "always_nodes"))


def test_vars_file_is_only_data(playbook_tasks):
    """The team edits vars/awx.yml; the playbook holds no object names of its own."""
    play, tasks = playbook_tasks
    assert play["vars_files"] == ["vars/awx.yml"]
    text = PLAYBOOK.read_text()
    for literal in ("llmops-platform", "LLMOps Platform", "aws_ec2.yml", "FREQ="):
        assert literal not in text, "%r belongs in vars/awx.yml" % literal


def test_syntax_check():
    run = subprocess.run(["ansible-playbook", "--syntax-check", str(PLAYBOOK)], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


# --- the contract with the lifecycle playbooks ---------------------------------------------------------

def _lifecycle_text():
    files = [p for p in (ROOT / "playbooks").glob("*.yml") if p.name != "awx_configure.yml"]
    files += list((ROOT / "roles").rglob("*.yml")) + list((ROOT / "roles").rglob("*.j2"))
    # group_vars travel with the inventory sources AWX syncs from this repository (inventories/<cloud>/<env>)
    files += list((ROOT / "inventories").glob("*/*/group_vars/**/*.yml"))
    return "\n".join(p.read_text(errors="replace") for p in files)


def test_contract_playbooks_exist(rendered):
    missing = sorted({jt["playbook"] for jt in rendered["full"]["objects"]["job_templates"]
                      if not (ROOT / jt["playbook"]).is_file()})
    assert not missing, "job templates run playbooks that are not in the repository: %s" % missing


def test_contract_survey_and_credential_variables_are_read(rendered):
    """A survey answer or injected credential nobody reads does nothing: each variable AWX passes must be
    used by some playbook or role."""
    objs = rendered["full"]["objects"]
    variables = {q["variable"] for jt in objs["job_templates"] for q in jt.get("survey_spec", {}).get("spec", [])}
    variables |= {v for ct in objs["credential_types"] for v in ct["injectors"].get("extra_vars", {})}
    text = _lifecycle_text()
    unread = sorted(v for v in variables if not re.search(r"\b%s\b" % v, text))
    assert not unread, "AWX passes variables no playbook or role reads: %s" % unread


def test_contract_job_tags_exist():
    deploy = ROOT / "playbooks" / "deploy_serving.yml"
    assert deploy.is_file(), "playbooks/deploy_serving.yml is missing"
    run = subprocess.run(["ansible-playbook", "--list-tags", str(deploy)], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    tags = {t.strip() for group in re.findall(r"TAGS: \[([^\]]*)\]", run.stdout) for t in group.split(",")}
    for tag in ("smoke", "rollback"):
        assert tag in tags, "deploy_serving.yml has no '%s' tag (its tags: %s)" % (tag, sorted(tags - {""}))
