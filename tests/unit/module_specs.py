"""The argument spec an installed module really uses, for checking the calls our roles and playbooks render.

Runs the module's main() until it constructs AnsibleModule and keeps the keyword arguments it passed
(argument_spec plus rules such as required_if), so a rendered call can be validated with ansible-core's
ArgumentSpecValidator against the module itself, not against a copy we wrote.
"""
import importlib

from ansible.module_utils import basic

# AnsibleModule kwargs that are argument rules (the rest, e.g. bypass_checks, no_log, are run-time switches).
VALIDATOR_KWARGS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class _Captured(Exception):
    pass


def capture_spec(collection, module_name):
    """AnsibleModule kwargs of <collection>.<module_name>, e.g. capture_spec("awx.awx", "job_template")."""
    module = importlib.import_module("ansible_collections.%s.plugins.modules.%s" % (collection, module_name))
    original = basic.AnsibleModule.__init__

    def capture(self, *args, **kwargs):
        raise _Captured(kwargs)

    basic.AnsibleModule.__init__ = capture
    try:
        module.main()
    except _Captured as captured:
        return captured.args[0]
    finally:
        basic.AnsibleModule.__init__ = original
    raise AssertionError("%s.%s never built an AnsibleModule" % (collection, module_name))


def validator_rules(spec_kwargs):
    """The argument rules among captured kwargs, as ArgumentSpecValidator takes them."""
    return dict((k, v) for k, v in spec_kwargs.items() if k in VALIDATOR_KWARGS)
