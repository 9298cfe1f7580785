"""run_module: AnsibleModule's declarations checked before run(), with messages that lead with the field."""
import pytest

from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError

SPEC = dict(
    mode=dict(type="str", default="plain", choices=["plain", "copy", "either"]),
    source=dict(type="str"),
    dest=dict(type="path"),
    url=dict(type="str"),
    names=dict(type="list", elements="str"),
)
REQUIRED_IF = [("mode", "copy", ["source", "dest"]), ("mode", "either", ["dest", "url"], True)]
RAN = []


def run(module):
    RAN.append(dict(module.params))
    if module.params["source"] == "bad":
        raise SpecError("source", "is bad", hint="give a good one")
    return {"changed": not module.check_mode, "mode": module.params["mode"]}


def main(**kwargs):
    run_module(SPEC, run, required_if=REQUIRED_IF, **kwargs)


@pytest.fixture(autouse=True)
def clean():
    del RAN[:]


@pytest.mark.parametrize("args, msg", [
    ({"mode": "copy"}, "source, dest: is required with mode=copy"),
    ({"mode": "copy", "source": "a"}, "dest: is required with mode=copy"),
    # AnsibleModule lets an empty string through; the old hand-written checks did not, and neither do we.
    ({"mode": "copy", "source": "", "dest": "/tmp/x"}, "source: is required with mode=copy"),
    ({"mode": "either"}, "dest or url: one of them is required with mode=either"),
])
def test_required_if_names_the_missing_fields_first(run_module, args, msg):
    result = run_module(main, args)
    assert result.failed and result["msg"] == msg
    assert RAN == [], "run() is not called with arguments that break a declared rule"


def test_rules_that_hold_let_run_go_ahead(run_module):
    assert run_module(main, {"mode": "either", "url": "http://x"})["mode"] == "either"
    assert run_module(main, {"mode": "copy", "source": "a", "dest": "/tmp/x"})["changed"] is True
    assert run_module(main, {})["mode"] == "plain"
    assert len(RAN) == 3


def test_other_declarations_keep_ansibles_messages(run_module):
    result = run_module(lambda: main(mutually_exclusive=[("source", "url")]), {"source": "a", "url": "b"})
    assert result.failed and result["msg"] == "parameters are mutually exclusive: source|url"
    result = run_module(lambda: main(required_together=[("source", "dest")]), {"source": "a"})
    assert result.failed and "source, dest" in result["msg"]
    result = run_module(lambda: main(required_one_of=[("source", "url")]), {})
    assert result.failed and "source, url" in result["msg"]
    assert RAN == []


def test_spec_errors_from_run_become_one_message(run_module):
    result = run_module(main, {"source": "bad"})
    assert result.failed and result["msg"] == "source: is bad. give a good one"


def test_check_mode_is_on_unless_a_module_says_otherwise(run_module):
    assert run_module(main, {}, check_mode=True)["changed"] is False
    skipped = run_module(lambda: main(supports_check_mode=False), {}, check_mode=True)
    assert skipped.get("skipped") is True and len(RAN) == 1
