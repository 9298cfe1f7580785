"""Every role documents every default in meta/argument_specs.yml, with the same value.

Role defaults are the interface users set in inventories and AWX surveys; when a default and its
documentation disagree, one of them is a bug.
"""
import pathlib

import pytest
import yaml

# Roles that only hold tasks other roles include (tasks_from); they refuse to run on their own.
INTERNAL_ROLES = {"common"}
ROLES = sorted(p for p in (pathlib.Path(__file__).resolve().parents[3] / "roles").iterdir() if p.is_dir())


def load(path):
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_match_argument_specs(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(k for k, v in options.items() if "default" in v), \
        "defaults/main.yml and meta/argument_specs.yml list different variables"
    for name, value in defaults.items():
        assert options[name]["default"] == value, "%s: default differs from its argument spec" % name
        assert options[name].get("description"), "%s has no description" % name


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_variables_are_prefixed_with_the_role_name(role):
    for name in load(role / "defaults" / "main.yml"):
        assert name.startswith(role.name + "_"), "%s must start with %s_" % (name, role.name)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_area_can_be_switched_off(role):
    if role.name in INTERNAL_ROLES:
        pytest.skip("%s is a library of shared tasks with no areas of its own" % role.name)
    defaults = load(role / "defaults" / "main.yml")
    switches = [k for k in defaults if k.endswith("_enabled")]
    assert switches, "%s has no <role>_<area>_enabled switch" % role.name
    assert all(isinstance(defaults[k], bool) for k in switches)
