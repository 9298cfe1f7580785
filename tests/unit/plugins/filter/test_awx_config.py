"""plugins/filter/awx_config.py: each transformation of vars/awx.yml into awx.awx module arguments, on a
small configuration written here (two clouds, two environments) so every name and link can be spelled
out. tests/unit/test_awx_configure.py runs the same filter through the playbook on the real vars file and
checks the result against the installed awx.awx argument specs."""
import copy

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.platform.plugins.filter import awx_config
from ansible_collections.llmops.platform.plugins.filter.awx_config import awx_masked, awx_objects


def _config():
    return {
        "awx_organization": "Org",
        "awx_project": {"name": "proj", "description": "the playbooks", "scm_url": "https://git.example/p.git",
                        "scm_branch": "main", "credential": ""},
        "awx_execution_environment": {"name": "ee", "description": "the EE", "image": "reg/ee:1", "pull": "missing"},
        "awx_clouds": {"aws": {"inventory_config": "aws_ec2.yml", "credential_type": "Amazon Web Services"},
                       "gcp": {"inventory_config": "gcp.gcp_compute.yml", "credential_type": "Google Compute Engine"}},
        "awx_environments": {"dev": None, "prod": {"backup_schedule": True, "approve_deploy": True}},
        "awx_default_target": {"cloud": "aws", "environment": "dev"},
        "awx_credential_types": [{"name": "Model key", "kind": "cloud", "inputs": {"fields": []},
                                  "injectors": {"extra_vars": {"k": "{{ key }}"}}}],
        "awx_credential_kinds": {"cloud": {}, "model_key": {"credential_type": "Model key", "description": "Key"}},
        "awx_credential_inputs": {},
        "awx_credentials_update_secrets": False,
        "awx_notification_templates": [{"name": "fail", "notification_type": "webhook",
                                        "notification_configuration": {"url": "https://hook", "password": "",
                                                                       "token": "t0ken"}}],
        "awx_notify_on_failure": ["fail"],
        "awx_notify_on_approval": ["fail"],
        "awx_survey_questions": {
            "environment": {"question_name": "Env", "question_description": "which", "variable": "env_var",
                            "type": "multiplechoice", "choices": ["dev", "prod"], "required": True, "default": "",
                            "min": 99},
            "version": {"question_name": "Version", "question_description": "v", "variable": "ver",
                        "type": "text", "min": 0, "max": 10, "required": False, "default": ""},
        },
        "awx_job_templates": [
            {"id": "deploy_serving", "playbook": "playbooks/deploy.yml", "description": "Deploy",
             "credentials": ["cloud", "model_key"], "survey": ["environment", "version"]},
            {"id": "smoke", "playbook": "playbooks/deploy.yml", "description": "Smoke", "job_tags": "smoke",
             "credentials": ["cloud"], "survey": []},
            {"id": "backup", "playbook": "playbooks/backup.yml", "description": "Backup",
             "credentials": ["model_key"], "survey": ["environment"]},
        ],
        "awx_job_template_defaults": {"timeout": 60, "job_type": "check", "ask_limit_on_launch": True},
        "awx_workflow_nodes": [
            {"id": "deploy", "job_template": "deploy_serving", "success": ["smoke"], "approval": True},
            {"id": "smoke", "job_template": "smoke", "failure": ["deploy"]},
        ],
        "awx_workflow_survey": ["environment"],
        "awx_approval_timeout_minutes": 5,
        "awx_schedules": [{"name": "nightly backup", "job_template": "backup", "enabled_by": "backup_schedule",
                           "rrule": "DTSTART;TZID=UTC:20250101T020000 RRULE:FREQ=DAILY"}],
    }


TARGETS = [("aws", "dev"), ("aws", "prod"), ("gcp", "dev"), ("gcp", "prod")]


def _render(config=None):
    return awx_objects(config or _config())


def test_filter_module_registers_both_filters():
    assert awx_config.FilterModule().filters() == {"awx_objects": awx_objects, "awx_masked": awx_masked}


def test_one_inventory_and_workflow_per_cloud_and_environment_clouds_outermost():
    objs = _render()["objects"]
    assert [i["name"] for i in objs["inventories"]] == ["llmops-%s-%s" % t for t in TARGETS]
    assert objs["inventories"][1] == {"name": "llmops-aws-prod", "organization": "Org", "state": "present",
                                      "description": "llmops.platform aws prod (inventories/aws/prod)"}
    assert [w["name"] for w in objs["workflow_job_templates"]] == ["llmops %s-%s lifecycle" % t for t in TARGETS]


def test_inventory_sources_read_hosts_yml_and_the_clouds_dynamic_inventory():
    sources = _render()["objects"]["inventory_sources"]
    assert len(sources) == 2 * len(TARGETS)
    controller, nodes = sources[4], sources[5]  # gcp dev, the third target
    assert controller["name"] == "llmops-gcp-dev controller" and "credential" not in controller
    assert controller["source_path"] == "inventories/gcp/dev/hosts.yml"
    assert nodes["name"] == "llmops-gcp-dev nodes" and nodes["credential"] == "llmops-gcp-dev"
    assert nodes["source_path"] == "inventories/gcp/dev/gcp.gcp_compute.yml"
    for source in (controller, nodes):
        assert source["inventory"] == "llmops-gcp-dev" and source["source_project"] == "proj"
        assert source["execution_environment"] == "ee" and source["source"] == "scm"


def test_credentials_cloud_per_target_secrets_per_environment_created_only_with_inputs():
    config = _config()
    bare = awx_objects(config)
    expected = ["llmops-aws-dev", "llmops-dev-model-key", "llmops-aws-prod", "llmops-prod-model-key",
                "llmops-gcp-dev", "llmops-gcp-prod"]
    assert bare["credentials_not_managed"] == expected  # each once, though both clouds use the env's key
    assert bare["objects"]["credentials"] == []
    config["awx_credential_inputs"] = {"llmops-prod-model-key": {"key": "s3cret"}}
    config["awx_credentials_update_secrets"] = True
    full = awx_objects(config)
    assert full["objects"]["credentials"] == [
        {"name": "llmops-prod-model-key", "organization": "Org", "credential_type": "Model key",
         "description": "Key (prod)", "inputs": {"key": "s3cret"}, "update_secrets": True, "state": "present"}]
    assert "llmops-prod-model-key" not in full["credentials_not_managed"]
    assert len(full["credentials_not_managed"]) == len(expected) - 1


def test_cloud_credential_type_and_description_come_from_the_cloud():
    config = _config()
    config["awx_credential_inputs"] = {"llmops-gcp-prod": {"service_account_contents": "{}"}}
    (cred,) = awx_objects(config)["objects"]["credentials"]
    assert cred["credential_type"] == "Google Compute Engine"
    assert cred["description"] == "Google Compute Engine access for gcp prod"


def test_job_templates_merge_defaults_and_use_the_default_targets_credentials():
    deploy, smoke, backup = _render()["objects"]["job_templates"]
    assert deploy["name"] == "llmops deploy serving"  # underscores become spaces
    assert deploy["timeout"] == 60 and deploy["ask_limit_on_launch"] is True  # from the defaults
    assert deploy["job_type"] == "run"  # the composed fields win over the defaults
    assert deploy["inventory"] == "llmops-aws-dev"
    assert deploy["credentials"] == ["llmops-aws-dev", "llmops-dev-model-key"]
    assert backup["credentials"] == ["llmops-dev-model-key"]
    assert deploy["project"] == "proj" and deploy["execution_environment"] == "ee"
    assert deploy["notification_templates_error"] == ["fail"]
    assert "job_tags" not in deploy and smoke["job_tags"] == "smoke"


def test_surveys_choices_for_choice_questions_bounds_for_the_others():
    deploy, smoke, dummy = _render()["objects"]["job_templates"]
    assert deploy["survey_enabled"] is True
    assert deploy["survey_spec"]["name"] == "llmops deploy serving survey"
    assert deploy["survey_spec"]["description"] == ""
    env, version = deploy["survey_spec"]["spec"]
    assert env == {"question_name": "Env", "question_description": "which", "variable": "env_var",
                   "type": "multiplechoice", "choices": ["dev", "prod"], "required": True, "default": ""}
    assert version["min"] == 0 and version["max"] == 10 and "choices" not in version
    # No questions: survey off and no survey_spec at all (an empty spec is an error in AWX).
    assert smoke["survey_enabled"] is False and "survey_spec" not in smoke


def test_workflows_ask_the_workflow_survey_and_notify_approvals_only_where_gated():
    dev, prod = _render()["objects"]["workflow_job_templates"][:2]
    assert [q["variable"] for q in dev["survey_spec"]["spec"]] == ["env_var"]
    assert dev["inventory"] == "llmops-aws-dev" and dev["allow_simultaneous"] is False
    assert "notification_templates_approvals" not in dev
    assert prod["notification_templates_approvals"] == ["fail"]


def test_workflow_nodes_children_first_with_approval_nodes_in_prod():
    nodes = _render()["objects"]["workflow_job_template_nodes"]
    dev = [n for n in nodes if n["workflow_job_template"] == "llmops aws-dev lifecycle"]
    assert [n["identifier"] for n in dev] == ["smoke", "deploy"]  # reversed: children first
    smoke, deploy = dev
    assert deploy["success_nodes"] == ["smoke"] and deploy["failure_nodes"] == [] and deploy["always_nodes"] == []
    assert smoke["failure_nodes"] == ["deploy"]
    assert deploy["unified_job_template"] == "llmops deploy serving" and deploy["lookup_organization"] == "Org"
    assert deploy["credentials"] == ["llmops-aws-dev", "llmops-dev-model-key"]
    prod = [n for n in nodes if n["workflow_job_template"] == "llmops gcp-prod lifecycle"]
    assert [n["identifier"] for n in prod] == ["smoke", "deploy", "deploy_approval"]
    smoke, deploy, approval = prod
    assert smoke["failure_nodes"] == ["deploy_approval"], "links to a gated node go through its approval"
    assert deploy["credentials"] == ["llmops-gcp-prod", "llmops-prod-model-key"]
    assert approval == {"identifier": "deploy_approval", "workflow_job_template": "llmops gcp-prod lifecycle",
                        "organization": "Org", "success_nodes": ["deploy"], "failure_nodes": [],
                        "always_nodes": [], "state": "present",
                        "approval_node": {"name": "llmops gcp-prod lifecycle: approve deploy",
                                          "description": "Approve deploy on gcp prod", "timeout": 300}}


def test_schedules_only_where_the_environment_enables_them():
    scheds = _render()["objects"]["schedules"]
    assert [s["name"] for s in scheds] == ["llmops aws-prod nightly backup", "llmops gcp-prod nightly backup"]
    sched = scheds[1]
    assert sched["description"] == "nightly backup of gcp prod"
    assert sched["unified_job_template"] == "llmops backup" and sched["inventory"] == "llmops-gcp-prod"
    assert sched["credentials"] == ["llmops-prod-model-key"]
    assert sched["extra_data"] == {"env_var": "prod"}  # answers the required environment question
    assert sched["rrule"].endswith("FREQ=DAILY") and sched["enabled"] is True


def test_project_sends_a_credential_only_when_one_is_named():
    (project,) = _render()["objects"]["projects"]
    assert "credential" not in project
    assert project["default_environment"] == "ee" and project["scm_type"] == "git" and project["wait"] is True
    config = _config()
    config["awx_project"]["credential"] = "scm"
    assert awx_objects(config)["objects"]["projects"][0]["credential"] == "scm"


def test_pass_through_kinds_get_organization_and_state():
    objs = _render()["objects"]
    assert objs["organizations"] == [{"name": "Org", "description": "LLM serving platform (llmops.platform)",
                                      "state": "present"}]
    assert objs["execution_environments"] == [{"name": "ee", "description": "the EE", "image": "reg/ee:1",
                                               "pull": "missing", "organization": "Org", "state": "present"}]
    (ctype,) = objs["credential_types"]
    assert ctype["state"] == "present" and ctype["injectors"] == {"extra_vars": {"k": "{{ key }}"}}
    (note,) = objs["notification_templates"]
    assert note["organization"] == "Org" and note["notification_configuration"]["token"] == "t0ken"


def test_input_is_not_changed_and_rendering_is_deterministic():
    config = _config()
    before = copy.deepcopy(config)
    first = awx_objects(config)
    assert config == before
    assert awx_objects(config) == first


def test_masking_hides_inputs_and_secret_notification_fields_only():
    config = _config()
    config["awx_credential_inputs"] = {"llmops-aws-dev": {"access_key": "AK", "secret_key": "SK"}}
    objects = awx_objects(config)["objects"]
    masked = awx_masked(objects)
    (cred,) = masked["credentials"]
    assert cred["inputs"] == {"access_key": "<masked>", "secret_key": "<masked>"}
    assert cred["name"] == "llmops-aws-dev" and cred["credential_type"] == "Amazon Web Services"
    conf = masked["notification_templates"][0]["notification_configuration"]
    assert conf == {"url": "https://hook", "password": "", "token": "<masked>"}  # empty stays empty: shows unset
    assert masked["job_templates"] == objects["job_templates"]
    assert objects["credentials"][0]["inputs"]["secret_key"] == "SK", "masking must not change what is sent"


def _without_environment_question(config):
    """No survey asks for the environment, but a schedule still has to answer it."""
    del config["awx_survey_questions"]["environment"]
    config["awx_workflow_survey"] = []
    for jt in config["awx_job_templates"]:
        jt["survey"] = []


@pytest.mark.parametrize("change, names", [
    (lambda c: c["awx_workflow_nodes"][1].update(job_template="smoke_test"),
     ["awx_workflow_nodes[1].job_template", "smoke_test", "deploy_serving, smoke, backup"]),
    (lambda c: c["awx_schedules"][0].update(job_template="nightly"), ["awx_schedules[0].job_template", "nightly"]),
    (lambda c: c["awx_job_templates"][2]["survey"].append("restore_point"),
     ["awx_job_templates[2].survey", "restore_point", "environment, version"]),
    (lambda c: c.update(awx_workflow_survey=["node_count"]), ["awx_workflow_survey", "node_count"]),
    (lambda c: c.update(awx_default_target={"cloud": "azure", "environment": "dev"}),
     ["awx_default_target", "azure", "aws, gcp"]),
    (lambda c: c["awx_job_templates"][1]["credentials"].append("ssh"),
     ["awx_job_templates[1].credentials", "ssh", "awx_credential_kinds"]),
    (lambda c: c["awx_workflow_nodes"][0].update(success=["smoke_tst"]),
     ["awx_workflow_nodes[0].success", "smoke_tst", "deploy, smoke"]),
    (lambda c: c["awx_job_templates"][0].pop("playbook"), ["awx_job_templates[0]", "'playbook'"]),
    (lambda c: c["awx_clouds"]["gcp"].pop("inventory_config"), ["awx_clouds.gcp", "'inventory_config'"]),
    (lambda c: c["awx_survey_questions"]["version"].pop("max"), ["awx_survey_questions.version", "'max'"]),
    (_without_environment_question, ["awx_survey_questions", "'environment'"]),
    (lambda c: c.pop("awx_schedules"), ["awx_schedules", "_awx_config"]),
])
def test_bad_references_fail_naming_the_variable_and_the_fix(change, names):
    config = _config()
    change(config)
    with pytest.raises(AnsibleFilterError) as error:
        awx_objects(config)
    for name in names:
        assert name in str(error.value), str(error.value)


def test_wrong_input_types_are_refused():
    with pytest.raises(AnsibleFilterError, match="dict of the vars/awx.yml variables"):
        awx_objects(["awx_organization"])
    with pytest.raises(AnsibleFilterError, match="objects dict of awx_objects"):
        awx_masked("objects")
