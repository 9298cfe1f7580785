"""roles/cloud_foundation/tasks/gcp.yml: every google.cloud call, rendered with the role's defaults, its
block's module_defaults and each GCP inventory's values (created and brought), checked against the
installed module's own argument spec (captured from the module's main() when it builds GcpModule, which
adds the common auth options), as the module applies it at run time. Arguments come from variables only,
so rendering them with ansible's Templar is exact.
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
OMIT = "__omit_place_holder__llmops_gcp"
PREFIX = "google.cloud."


def _gcp_tasks(tasks, scope=None, defaults=None):
    """(module, task, vars in scope, module_defaults in scope) for every google.cloud task."""
    for task in tasks:
        here = dict(scope or {})
        here.update(task.get("vars") or {})
        module_defaults = dict(defaults or {})
        module_defaults.update((task.get("module_defaults") or {}).get("group/google.cloud.gcp") or {})
        if "block" in task:
            yield from _gcp_tasks(task["block"], here, module_defaults)
            continue
        action = next((k for k in task if k.startswith(PREFIX)), None)
        if action:
            yield action[len(PREFIX):], task, here, module_defaults


def _trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    if isinstance(value, dict):
        return dict((k, _trusted(v)) for k, v in value.items())
    return value


def _variables(env, create):
    loader = DataLoader()
    variables = dict(loader.load_from_file(str(ROLE / "defaults" / "main.yml")))
    for path in sorted((ROOT / "inventories" / "gcp" / env / "group_vars" / "all").glob("*.yml")):
        variables.update(loader.load_from_file(str(path)) or {})
    variables.update({"omit": OMIT, "cloud_foundation_create": create, "cloud_foundation_state": "present",
                      "cloud_foundation_name": variables["llmops_cluster"]["name"],
                      "cloud_foundation_region": variables["llmops_cluster"]["region"]})
    return loader, variables


def _render(loader, variables, scope, args):
    templar = Templar(loader=loader, variables=_trusted(dict(variables, **scope)))
    rendered = templar.template(_trusted(args))
    return dict((k, v) for k, v in rendered.items() if v != OMIT)


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
@pytest.mark.parametrize("create", [True, False])
def test_every_google_cloud_call_passes_the_module_argument_spec(env, create, monkeypatch):
    monkeypatch.setenv("GCP_PROJECT", "llmops-%s-1234" % env)
    monkeypatch.setenv("GCP_SERVICE_ACCOUNT_FILE", "/run/secrets/gcp.json")
    loader, variables = _variables(env, create)
    tasks = loader.load_from_file(str(ROLE / "tasks" / "gcp.yml"))
    seen = set()
    for module_name, task, scope, module_defaults in _gcp_tasks(tasks):
        args = dict(module_defaults)
        args.update(task[PREFIX + module_name])
        args = _render(loader, variables, scope, copy.deepcopy(args))
        spec_kwargs = capture_spec("google.cloud", module_name)
        kwargs = validator_rules(spec_kwargs)
        result = ModuleArgumentSpecValidator(spec_kwargs["argument_spec"], **kwargs).validate(args)
        assert not result.error_messages, "%s (%s): %s" % (task["name"], module_name, result.error_messages)
        assert args["auth_kind"] == "serviceaccount" and args["project"] == "llmops-%s-1234" % env
        if not spec_kwargs.get("supports_check_mode"):
            assert "not ansible_check_mode" in str(task.get("when")), \
                "%s does not support check mode: its task must be skipped in check mode" % module_name
        for key, value in args.items():
            assert "{{" not in str(value), "%s.%s was not rendered: %r" % (module_name, key, value)
        if module_name == "gcp_compute_subnetwork" and args["state"] == "present":
            assert [r["range_name"] for r in args["secondary_ip_ranges"]] == ["pods", "services"]
            assert args["private_ip_google_access"] is True
        seen.add(module_name)
    assert seen == {"gcp_compute_network", "gcp_compute_subnetwork", "gcp_compute_router", "gcp_compute_network_info",
                    "gcp_compute_subnetwork_info", "gcp_compute_router_info"}


def test_a_misspelled_option_fails_the_same_check():
    """Mutation: secondary_ip_range (no s) is not an option of gcp_compute_subnetwork."""
    spec_kwargs = capture_spec("google.cloud", "gcp_compute_subnetwork")
    result = ModuleArgumentSpecValidator(spec_kwargs["argument_spec"]).validate(
        {"auth_kind": "application", "name": "n", "region": "r", "network": {"selfLink": "x"}, "ip_cidr_range": "10.0.0.0/20",
         "secondary_ip_range": []})
    assert any("secondary_ip_range" in m for m in result.error_messages)


def test_inventory_provider_options_name_what_the_foundations_make():
    """The cluster goes onto the foundations: the provider_options and the role's names agree."""
    for env in ("dev", "staging", "prod"):
        loader, variables = _variables(env, True)
        templar = Templar(loader=loader, variables=_trusted(variables))
        options = variables["llmops_cluster"]["provider_options"]
        for option, role_var in (("network", "cloud_foundation_gcp_network"),
                                 ("subnetwork", "cloud_foundation_gcp_subnetwork"),
                                 ("pods_range_name", "cloud_foundation_gcp_pods_range_name"),
                                 ("services_range_name", "cloud_foundation_gcp_services_range_name"),
                                 ("nat_router", "cloud_foundation_gcp_router")):
            assert templar.template(_trusted(options[option])) == templar.template(_trusted(variables[role_var])), (env, option)
        assert options["private_nodes"] is True and options.get("workload_identity", True) is True


def test_teardown_deletes_only_what_carries_our_mark():
    tasks = yaml.safe_load((ROLE / "tasks" / "gcp.yml").read_text())
    absent = [t for t in tasks[0]["block"] if "absent" in str(t.get("when"))][0]["block"]
    deletes = [t for t in absent if any(k.startswith(PREFIX) for k in t)]
    assert len(deletes) == 3
    for task in deletes:
        args = task[next(k for k in task if k.startswith(PREFIX))]
        assert args["state"] == "absent" and "__cloud_foundation_gcp_mark" in task["when"]
    present = [t for t in tasks[0]["block"] if "present" in str(t.get("when"))][0]["block"]
    for task in present:
        args = task.get(PREFIX + "gcp_compute_network") or task.get(PREFIX + "gcp_compute_subnetwork") \
            or task.get(PREFIX + "gcp_compute_router")
        if args:
            assert args["description"] == "{{ __cloud_foundation_gcp_mark }}" and "_ours_" in task["when"]
