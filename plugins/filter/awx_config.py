# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn playbooks/vars/awx.yml into the arguments of every awx.awx module call.

playbooks/awx_configure.yml loops over what awx_objects returns and passes each dict to its awx.awx
module unchanged, so these functions decide exactly what AWX receives. Plain Python over plain data:
tests/unit/plugins/filter/test_awx_config.py calls them directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

# The keys of the configuration dict: the variables of playbooks/vars/awx.yml, under the same names.
CONFIG_KEYS = (
    "awx_organization", "awx_project", "awx_execution_environment", "awx_clouds", "awx_environments",
    "awx_default_target", "awx_credential_types", "awx_credential_kinds", "awx_credential_inputs",
    "awx_credentials_update_secrets", "awx_notification_templates", "awx_notify_on_failure",
    "awx_notify_on_approval", "awx_survey_questions", "awx_job_templates", "awx_job_template_defaults",
    "awx_workflow_nodes", "awx_workflow_survey", "awx_approval_timeout_minutes", "awx_schedules",
)
# Fields of notification configurations that hold secrets (masked in the render file).
SECRET_NOTIFICATION_FIELDS = ("password", "token", "service_key", "account_token")
MASK = "<masked>"
EDGES = ("success", "failure", "always")
CHOICE_TYPES = ("multiplechoice", "multiselect")


# --- names of controller objects (vars/awx.yml's header documents them) -------------------------------

def target_key(cloud, environment):
    return "%s-%s" % (cloud, environment)


def inventory_name(cloud, environment):
    return "llmops-%s" % target_key(cloud, environment)


def workflow_name(cloud, environment):
    return "llmops %s lifecycle" % target_key(cloud, environment)


def job_template_name(jt_id):
    return "llmops " + jt_id.replace("_", " ")


def credential_name(kind, cloud, environment):
    # Cloud credentials differ per cloud; the platform's secrets are shared by every cloud of an environment.
    if kind == "cloud":
        return "llmops-%s" % target_key(cloud, environment)
    return "llmops-%s-%s" % (environment, kind.replace("_", "-"))


# --- checks: bad input names the variable and the fix -------------------------------------------------

def _fail(where, problem, fix):
    raise AnsibleFilterError("vars/awx.yml: %s %s. %s" % (where, problem, fix))


def _field(entry, key, where):
    if not isinstance(entry, dict) or key not in entry:
        _fail(where, "has no '%s'" % key, "Add it (see the comments in playbooks/vars/awx.yml).")
    return entry[key]


def _check_config(config):
    if not isinstance(config, dict):
        raise AnsibleFilterError("awx_objects expects a dict of the vars/awx.yml variables, got %s"
                                 % type(config).__name__)
    missing = [key for key in CONFIG_KEYS if key not in config]
    if missing:
        raise AnsibleFilterError("awx_objects: the configuration lacks %s. Pass every variable of vars/awx.yml "
                                 "(the playbook's _awx_config lists them)." % ", ".join(missing))
    default = config["awx_default_target"]
    if _field(default, "cloud", "awx_default_target") not in config["awx_clouds"] or \
            _field(default, "environment", "awx_default_target") not in config["awx_environments"]:
        _fail("awx_default_target", "%s names a cloud or environment that is not defined" % dict(default),
              "Use a key of awx_clouds (%s) and one of awx_environments (%s)."
              % (", ".join(config["awx_clouds"]), ", ".join(config["awx_environments"])))
    jt_ids = [_field(jt, "id", "awx_job_templates[%d]" % i) for i, jt in enumerate(config["awx_job_templates"])]
    for field in ("awx_workflow_nodes", "awx_schedules"):
        for i, entry in enumerate(config[field]):
            ref = _field(entry, "job_template", "%s[%d]" % (field, i))
            if ref not in jt_ids:
                _fail("%s[%d].job_template" % (field, i), "is '%s', which is not a job template" % ref,
                      "Use an id of awx_job_templates (%s)." % ", ".join(jt_ids))
    questions = config["awx_survey_questions"]
    surveys = [("awx_job_templates[%d].survey" % i, _field(jt, "survey", "awx_job_templates[%d]" % i))
               for i, jt in enumerate(config["awx_job_templates"])]
    kinds = config["awx_credential_kinds"]
    for i, jt in enumerate(config["awx_job_templates"]):
        unknown = [k for k in _field(jt, "credentials", "awx_job_templates[%d]" % i) if k not in kinds]
        if unknown:
            _fail("awx_job_templates[%d].credentials" % i, "names unknown kinds %s" % unknown,
                  "Use keys of awx_credential_kinds (%s)." % ", ".join(kinds))
    for where, keys in surveys + [("awx_workflow_survey", config["awx_workflow_survey"])]:
        unknown = [q for q in keys if q not in questions]
        if unknown:
            _fail(where, "names unknown survey questions %s" % unknown,
                  "Use keys of awx_survey_questions (%s)." % ", ".join(questions))
    node_ids = [_field(n, "id", "awx_workflow_nodes[%d]" % i) for i, n in enumerate(config["awx_workflow_nodes"])]
    for i, node in enumerate(config["awx_workflow_nodes"]):
        for edge in EDGES:
            unknown = [child for child in node.get(edge) or [] if child not in node_ids]
            if unknown:
                _fail("awx_workflow_nodes[%d].%s" % (i, edge), "links to undefined nodes %s" % unknown,
                      "Use ids of awx_workflow_nodes (%s)." % ", ".join(node_ids))
    if config["awx_schedules"] and "environment" not in questions:
        _fail("awx_survey_questions", "has no 'environment' question, which schedules answer",
              "Keep the environment question (its variable is the schedules' extra_data).")


# --- the transformations, one per object kind ---------------------------------------------------------

def targets(config):
    """One target per cloud and environment, clouds outermost (the order of every per-target list)."""
    out = []
    for cloud, settings in config["awx_clouds"].items():
        for environment, env_settings in config["awx_environments"].items():
            out.append({"cloud": cloud, "environment": environment, "settings": env_settings or {},
                        "inventory_config": _field(settings, "inventory_config", "awx_clouds.%s" % cloud),
                        "cloud_credential_type": _field(settings, "credential_type", "awx_clouds.%s" % cloud),
                        "inventory": inventory_name(cloud, environment),
                        "workflow": workflow_name(cloud, environment)})
    return out


def credential_names(config, cloud, environment):
    """Credential name per kind for one target: what job templates and nodes of that target use."""
    return {kind: credential_name(kind, cloud, environment) for kind in config["awx_credential_kinds"]}


def all_credentials(config):
    """Every credential the targets need, once each, without inputs (secret values are added later)."""
    out, seen = [], set()
    for target in targets(config):
        cloud, environment = target["cloud"], target["environment"]
        for kind, settings in config["awx_credential_kinds"].items():
            name = credential_name(kind, cloud, environment)
            if name in seen:
                continue
            seen.add(name)
            if kind == "cloud":
                ctype = target["cloud_credential_type"]
                description = "%s access for %s %s" % (ctype, cloud, environment)
            else:
                where = "awx_credential_kinds.%s" % kind
                ctype = _field(settings, "credential_type", where)
                description = "%s (%s)" % (_field(settings, "description", where), environment)
            out.append({"name": name, "organization": config["awx_organization"], "credential_type": ctype,
                        "description": description})
    return out


def credentials(config):
    """The credentials with inputs in awx_credential_inputs; the others must exist on the controller."""
    inputs = config["awx_credential_inputs"]
    return [dict(cred, inputs=inputs[cred["name"]], update_secrets=config["awx_credentials_update_secrets"],
                 state="present")
            for cred in all_credentials(config) if cred["name"] in inputs]


def credentials_not_managed(config):
    return [cred["name"] for cred in all_credentials(config) if cred["name"] not in config["awx_credential_inputs"]]


def survey_question(question, where):
    out = {key: _field(question, key, where) for key in
           ("question_name", "question_description", "required", "type", "variable", "default")}
    bounds = ("choices",) if question["type"] in CHOICE_TYPES else ("min", "max")
    out.update((key, _field(question, key, where)) for key in bounds)
    return out


def survey_spec(config, keys, name):
    """survey_enabled and survey_spec for a job template or workflow asking the questions named in keys."""
    questions = config["awx_survey_questions"]
    spec = [survey_question(questions[key], "awx_survey_questions.%s" % key) for key in keys]
    if not spec:
        return {"survey_enabled": False}
    return {"survey_enabled": True, "survey_spec": {"name": name + " survey", "description": "", "spec": spec}}


def organizations(config):
    return [{"name": config["awx_organization"], "description": "LLM serving platform (llmops.platform)",
             "state": "present"}]


def execution_environments(config):
    ee = config["awx_execution_environment"]
    where = "awx_execution_environment"
    return [{"name": _field(ee, "name", where), "description": _field(ee, "description", where),
             "image": _field(ee, "image", where), "pull": _field(ee, "pull", where),
             "organization": config["awx_organization"], "state": "present"}]


def projects(config):
    project = config["awx_project"]
    where = "awx_project"
    out = {"name": _field(project, "name", where), "description": _field(project, "description", where),
           "organization": config["awx_organization"], "scm_type": "git",
           "scm_url": _field(project, "scm_url", where), "scm_branch": _field(project, "scm_branch", where),
           "scm_clean": True, "scm_update_on_launch": True, "scm_update_cache_timeout": 300,
           "default_environment": config["awx_execution_environment"]["name"], "wait": True, "state": "present"}
    # An empty credential means a public repository: AWX must get no credential option at all.
    if project.get("credential"):
        out["credential"] = project["credential"]
    return [out]


def inventories(config):
    return [{"name": t["inventory"], "organization": config["awx_organization"],
             "description": "llmops.platform %s %s (inventories/%s/%s)"
             % (t["cloud"], t["environment"], t["cloud"], t["environment"]),
             "state": "present"}
            for t in targets(config)]


def inventory_sources(config):
    """Two sources per inventory: the controller's hosts.yml, and the cloud's dynamic inventory for nodes."""
    out = []
    for t in targets(config):
        directory = "inventories/%s/%s/" % (t["cloud"], t["environment"])
        base = {"inventory": t["inventory"], "organization": config["awx_organization"], "source": "scm",
                "source_project": config["awx_project"]["name"],
                "execution_environment": config["awx_execution_environment"]["name"], "overwrite": True,
                "overwrite_vars": True, "update_on_launch": True, "update_cache_timeout": 300, "state": "present"}
        out.append(dict(base, name=t["inventory"] + " controller",
                        description="The controller host and group_vars (hosts.yml)",
                        source_path=directory + "hosts.yml"))
        out.append(dict(base, name=t["inventory"] + " nodes",
                        description="Cluster nodes from the %s dynamic inventory (%s)" % (t["cloud"], t["inventory_config"]),
                        source_path=directory + t["inventory_config"],
                        credential=credential_name("cloud", t["cloud"], t["environment"])))
    return out


def notification_templates(config):
    return [dict(note, organization=config["awx_organization"], state="present")
            for note in config["awx_notification_templates"]]


def _job_templates_by_id(config):
    return {jt["id"]: jt for jt in config["awx_job_templates"]}


def job_templates(config):
    """One per entry of awx_job_templates, launched by default on awx_default_target."""
    default = config["awx_default_target"]
    names = credential_names(config, default["cloud"], default["environment"])
    out = []
    for i, jt in enumerate(config["awx_job_templates"]):
        where = "awx_job_templates[%d]" % i
        name = job_template_name(jt["id"])
        args = dict(config["awx_job_template_defaults"])
        args.update({"name": name, "description": _field(jt, "description", where),
                     "organization": config["awx_organization"], "project": config["awx_project"]["name"],
                     "playbook": _field(jt, "playbook", where), "job_type": "run",
                     "inventory": inventory_name(default["cloud"], default["environment"]),
                     "execution_environment": config["awx_execution_environment"]["name"],
                     "credentials": [names[kind] for kind in jt["credentials"]],
                     "notification_templates_error": config["awx_notify_on_failure"], "state": "present"})
        args.update(survey_spec(config, jt["survey"], name))
        if "job_tags" in jt:
            args["job_tags"] = jt["job_tags"]
        out.append(args)
    return out


def workflow_job_templates(config):
    out = []
    for t in targets(config):
        args = {"name": t["workflow"], "organization": config["awx_organization"], "inventory": t["inventory"],
                "description": "provision, baseline, harden, observe, deploy and smoke-test %s %s"
                % (t["cloud"], t["environment"]),
                "allow_simultaneous": False, "ask_variables_on_launch": False, "ask_inventory_on_launch": False,
                "notification_templates_error": config["awx_notify_on_failure"], "state": "present"}
        args.update(survey_spec(config, config["awx_workflow_survey"], t["workflow"]))
        if t["settings"].get("approve_deploy"):
            args["notification_templates_approvals"] = config["awx_notify_on_approval"]
        out.append(args)
    return out


def workflow_job_template_nodes(config):
    """Every node of every workflow, children before parents: AWX links a node only to nodes that exist.
    Where the environment sets approve_deploy, each node marked approval gets an approval node in front."""
    jts = _job_templates_by_id(config)
    org = config["awx_organization"]
    out = []
    for t in targets(config):
        creds = credential_names(config, t["cloud"], t["environment"])
        gated = set()
        if t["settings"].get("approve_deploy"):
            gated = {n["id"] for n in config["awx_workflow_nodes"] if n.get("approval")}
        for node in reversed(config["awx_workflow_nodes"]):
            args = {"identifier": node["id"], "workflow_job_template": t["workflow"], "organization": org,
                    "unified_job_template": job_template_name(node["job_template"]), "lookup_organization": org,
                    "credentials": [creds[kind] for kind in jts[node["job_template"]]["credentials"]],
                    "state": "present"}
            for edge in EDGES:
                # All three lists always sent, empty too: a rerun converges to exactly the declared graph.
                args[edge + "_nodes"] = [child + "_approval" if child in gated else child
                                         for child in node.get(edge) or []]
            out.append(args)
            if node["id"] in gated:
                out.append({"identifier": node["id"] + "_approval", "workflow_job_template": t["workflow"],
                            "organization": org,
                            "approval_node": {"name": "%s: approve %s" % (t["workflow"], node["id"]),
                                              "description": "Approve %s on %s %s"
                                              % (node["id"], t["cloud"], t["environment"]),
                                              "timeout": config["awx_approval_timeout_minutes"] * 60},
                            "success_nodes": [node["id"]], "failure_nodes": [], "always_nodes": [],
                            "state": "present"})
    return out


def schedules(config):
    """Each schedule once per target whose environment sets the flag named in enabled_by."""
    jts = _job_templates_by_id(config)
    out = []
    for i, sched in enumerate(config["awx_schedules"]):
        where = "awx_schedules[%d]" % i
        flag = _field(sched, "enabled_by", where)
        for t in targets(config):
            if not t["settings"].get(flag):
                continue
            creds = credential_names(config, t["cloud"], t["environment"])
            out.append({"name": "llmops %s %s" % (target_key(t["cloud"], t["environment"]), _field(sched, "name", where)),
                        "description": "%s of %s %s" % (sched["name"], t["cloud"], t["environment"]),
                        "organization": config["awx_organization"],
                        "unified_job_template": job_template_name(sched["job_template"]),
                        "rrule": _field(sched, "rrule", where), "inventory": t["inventory"],
                        "credentials": [creds[kind] for kind in jts[sched["job_template"]]["credentials"]],
                        # The template's environment question is required; a schedule has nobody to answer it.
                        "extra_data": {config["awx_survey_questions"]["environment"]["variable"]: t["environment"]},
                        "enabled": True, "state": "present"})
    return out


# --- the filters --------------------------------------------------------------------------------------

def awx_objects(config):
    """{'objects': {kind: [module arguments]}, 'credentials_not_managed': [names]} from vars/awx.yml."""
    _check_config(config)
    objects = {
        "organizations": organizations(config),
        "execution_environments": execution_environments(config),
        "credential_types": [dict(ctype, state="present") for ctype in config["awx_credential_types"]],
        "credentials": credentials(config),
        "projects": projects(config),
        "inventories": inventories(config),
        "inventory_sources": inventory_sources(config),
        "notification_templates": notification_templates(config),
        "job_templates": job_templates(config),
        "workflow_job_templates": workflow_job_templates(config),
        "workflow_job_template_nodes": workflow_job_template_nodes(config),
        "schedules": schedules(config),
    }
    return {"objects": objects, "credentials_not_managed": credentials_not_managed(config)}


def awx_masked(objects):
    """The objects with every credential input and secret notification field replaced by <masked>; keys
    and everything else unchanged, so the render file shows what is sent without what is secret."""
    if not isinstance(objects, dict):
        raise AnsibleFilterError("awx_masked expects the objects dict of awx_objects, got %s" % type(objects).__name__)
    masked = dict(objects)
    masked["credentials"] = [dict(cred, inputs={key: MASK for key in cred["inputs"]})
                             for cred in objects.get("credentials", [])]
    masked["notification_templates"] = [
        dict(note, notification_configuration={
            key: MASK if key in SECRET_NOTIFICATION_FIELDS and value else value
            for key, value in note["notification_configuration"].items()})
        for note in objects.get("notification_templates", [])]
    return masked


class FilterModule(object):
    def filters(self):
        return {"awx_objects": awx_objects, "awx_masked": awx_masked}
