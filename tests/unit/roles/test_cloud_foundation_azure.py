"""roles/cloud_foundation/tasks/azure.yml: every azure.azcollection call, rendered with the role's defaults and
each Azure inventory's values (created and brought), checked against the installed module's own argument spec.

The spec is not copied: each module class is instantiated until AzureRMModuleBase builds its AnsibleModule,
and the kwargs it passes (argument_spec with the common auth options, mutually_exclusive, required_if, ...) are
applied with ansible-core's ModuleArgumentSpecValidator, as the module would at run time. Arguments come from
variables only (the task file promises this), so rendering them with ansible's Templar is exact.
"""
import copy
import pathlib

import pytest
import yaml

from module_specs import capture_spec, validator_rules
from ansible.module_utils.common.arg_spec import ModuleArgumentSpecValidator
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar, trust_as_template

init_plugin_loader()

ROOT = pathlib.Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "cloud_foundation"
OMIT = "__omit_place_holder__llmops"


def _leaf_tasks(tasks, inherited=None):
    """(task, its vars and its blocks' vars) for every task, blocks flattened."""
    for task in tasks:
        scope = dict(inherited or {})
        scope.update(task.get("vars") or {})
        if "block" in task:
            yield from _leaf_tasks(task["block"], scope)
        else:
            yield task, scope


def _azure_tasks(tasks):
    """(module name, task, vars in scope) for every azure.azcollection task."""
    for task, scope in _leaf_tasks(tasks):
        action = next((k for k in task if k.startswith("azure.azcollection.")), None)
        if action:
            yield action.split(".")[-1], task, scope


def _variables(env, create):
    loader = DataLoader()
    defaults = loader.load_from_file(str(ROLE / "defaults" / "main.yml"))
    inventory = {}
    for path in sorted((ROOT / "inventories" / "azure" / env / "group_vars" / "all").glob("*.yml")):
        inventory.update(loader.load_from_file(str(path)) or {})
    variables = dict(defaults)
    variables.update(inventory)
    variables.update({"omit": OMIT, "cloud_foundation_create": create})
    return loader, variables


def _trusted(value):
    """Role and inventory files are trusted template sources, as ansible-playbook treats them."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    if isinstance(value, dict):
        return dict((k, _trusted(v)) for k, v in value.items())
    return value


def _render(loader, variables, scope, args):
    templar = Templar(loader=loader, variables=_trusted(dict(variables, **scope)))
    rendered = templar.template(_trusted(args))
    return dict((k, v) for k, v in rendered.items() if v != OMIT)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
@pytest.mark.parametrize("create", [True, False])
def test_every_azure_collection_call_passes_the_module_argument_spec(env, create, monkeypatch):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-00000000abcd")
    monkeypatch.setenv("AZURE_AKS_ADMIN_GROUP_ID", "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0")
    monkeypatch.setenv("AZURE_NODE_SUBNET_ID", "/subscriptions/00000000-0000-0000-0000-00000000abcd/resourceGroups/"
                       "net/providers/Microsoft.Network/virtualNetworks/hub/subnets/aks")
    loader = DataLoader()
    tasks = [t for name in ("azure.yml", "azure_admin_group.yml") for t in loader.load_from_file(str(ROLE / "tasks" / name))]
    loader, variables = _variables(env, create)
    variables["cloud_foundation_azure_admin_group_name"] = "llmops-%s-admins" % env
    variables["cloud_foundation_azure_admin_group_members"] = ["11111111-2222-3333-4444-555555555555"]
    seen = set()
    for module_name, task, scope in _azure_tasks(tasks):
        args = _render(loader, variables, scope, copy.deepcopy(task["azure.azcollection.%s" % module_name]))
        spec_kwargs = capture_spec("azure.azcollection", module_name)
        kwargs = validator_rules(spec_kwargs)
        result = ModuleArgumentSpecValidator(spec_kwargs["argument_spec"], **kwargs).validate(args)
        assert not result.error_messages, "%s (%s): %s" % (task["name"], module_name, result.error_messages)
        if not spec_kwargs.get("supports_check_mode"):
            # e.g. azure_rm_adgroup: the role must skip it in check mode rather than let it change things.
            assert "not ansible_check_mode" in str(task.get("when")), \
                "%s does not support check mode: its task must be skipped in check mode" % module_name
        for key, value in args.items():
            assert "{{" not in str(value), "%s.%s was not rendered: %r" % (module_name, key, value)
        seen.add(module_name)
    assert seen >= {"azure_rm_resourcegroup", "azure_rm_virtualnetwork", "azure_rm_subnet", "azure_rm_adgroup",
                    "azure_rm_adgroup_info", "azure_rm_subnet_info", "azure_rm_resourcegroup_info", "azure_rm_virtualnetwork_info"}


def test_a_misspelled_option_fails_the_same_check():
    """Mutation: the check really applies the spec (adress_prefix_cidr, one letter off)."""
    spec_kwargs = capture_spec("azure.azcollection", "azure_rm_subnet")
    kwargs = validator_rules(spec_kwargs)
    result = ModuleArgumentSpecValidator(spec_kwargs["argument_spec"], **kwargs).validate(
        {"resource_group": "rg", "virtual_network_name": "v", "name": "nodes", "adress_prefix_cidr": "10.0.0.0/16"})
    assert any("adress_prefix_cidr" in m for m in result.error_messages)


def test_tags_mark_what_was_created_and_teardown_is_guarded_by_them():
    text = (ROLE / "tasks" / "azure.yml").read_text()
    tasks = yaml.safe_load(text)
    absent = [t for t in tasks[0]["block"] if "absent" in str(t.get("when"))][0]["block"]
    deletes = [t for t in absent if (t.get("azure.azcollection.azure_rm_virtualnetwork") or
                                     t.get("azure.azcollection.azure_rm_resourcegroup") or {}).get("state") == "absent"]
    assert len(deletes) == 2 and all("llmops-foundation" in t["when"] for t in deletes)
    rg = [t for t in deletes if "azure.azcollection.azure_rm_resourcegroup" in t][0]
    assert rg["azure.azcollection.azure_rm_resourcegroup"]["force_delete_nonempty"] is False


BROUGHT = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
MADE = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"


@pytest.mark.parametrize("brought, created, found, expected", [
    # Created by this run: its ID comes from the create result (Graph may not list a new group at once).
    (BROUGHT, {"object_id": MADE}, {"ad_groups": []}, [BROUGHT, MADE]),
    # Check mode or a rerun: the create task is skipped or unchanged, the read-only lookup finds the group.
    (BROUGHT, {"skipped": True}, {"ad_groups": [{"object_id": MADE}]}, [BROUGHT, MADE]),
    (BROUGHT, {"object_id": MADE}, {"ad_groups": [{"object_id": MADE}]}, [BROUGHT, MADE]),
    # AZURE_AKS_ADMIN_GROUP_ID unset: the empty brought entry is dropped, the created group stays.
    ("", {"object_id": MADE}, {"ad_groups": []}, [MADE]),
    # No group name: only what is brought.
    (BROUGHT, {"skipped": True}, {"skipped": True}, [BROUGHT]),
])
def test_the_admin_group_flows_into_the_cluster_provider_options(brought, created, found, expected, monkeypatch):
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-00000000abcd")
    monkeypatch.setenv("AZURE_AKS_ADMIN_GROUP_ID", brought)
    loader, variables = _variables("dev", True)
    variables.update({"cloud_foundation_azure_admin_group_name": "llmops-dev-admins",
                      "_cloud_foundation_azure_group": created, "_cloud_foundation_azure_group_found": found})
    tasks = dict((t["name"], (t, scope)) for name in ("azure.yml", "azure_admin_group.yml") for t, scope in
                 _leaf_tasks(loader.load_from_file(str(ROLE / "tasks" / name))))
    lookup, _scope = tasks["Azure | find the Entra ID admin group by display name {{ cloud_foundation_azure_admin_group_name }}"]
    assert "ansible_check_mode" not in str(lookup.get("when"))  # it runs in check mode too (read-only)
    task, scope = tasks["Azure | the admin group IDs the cluster gets"]
    facts = _render(loader, variables, scope, copy.deepcopy(task["ansible.builtin.set_fact"]))
    assert facts["cloud_foundation_cluster_options"] == {"admin_group_object_ids": expected}
    variables["cloud_foundation_cluster_options"] = facts["cloud_foundation_cluster_options"]
    task, scope = tasks["Azure | what the cluster uses"]
    facts = _render(loader, variables, scope, copy.deepcopy(task["ansible.builtin.set_fact"]))
    assert facts["cloud_foundation_azure"]["admin_group_object_ids"] == expected

    # provision.yml hands it to gpu_cluster on top of the inventory's provider_options.
    plays = loader.load_from_file(str(ROOT / "playbooks" / "provision.yml"))
    call = [t["llmops.platform.gpu_cluster"] for p in plays for t in p.get("tasks") or []
            if "llmops.platform.gpu_cluster" in t][0]
    # Run on its own (no foundations.yml in the job), provision.yml looks the group up again first.
    lookups = [t for p in plays for t in p.get("tasks") or []
               if (t.get("ansible.builtin.include_role") or {}).get("tasks_from") == "azure_admin_group.yml"]
    assert len(lookups) == 1 and "cloud_foundation_cluster_options is not defined" in lookups[0]["when"]
    options = _render(loader, variables, {}, {"provider_options": call["provider_options"]})["provider_options"]
    assert options["admin_group_object_ids"] == expected
    assert options["resource_group"] == "llmops-dev" and options["oidc_issuer"] is True
