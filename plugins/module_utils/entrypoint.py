# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one main() our modules share: parse arguments, mask credentials, run, turn our errors into fail_json."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.errors import RequiredIfError

from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError, SpecError

# Keys of free-form dict options (provider_options) whose values are credentials: a key that ends in a
# credential word (`client_secret`, `access_token`, `sas_token`, `api_key`) or starts with `secret`
# (`secret_key`). Whole `_`-separated words only, so `max_tokens`, `token_count` or `gpu_ami_type` do not.
CREDENTIAL_KEY = re.compile(
    r"(^|_)(secret|token|password|passwd|private_key|api_key|credentials|service_account_(info|json|contents))$"
    r"|^secret(_|$)", re.IGNORECASE)


def credential_values(value, masked=False):
    """Every non-empty string under a credential-named key of `value` (dicts and lists, any depth)."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= credential_values(item, masked or bool(CREDENTIAL_KEY.search(str(key))))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found |= credential_values(item, masked)
    elif masked and value not in (None, "") and not isinstance(value, bool):
        found.add(str(value))
    return found


class LlmopsModule(AnsibleModule):
    """AnsibleModule that also masks credentials nested in free-form dict options.

    Declared options carry `no_log`; a free-form dict such as `provider_options` cannot, so its
    credential values are added to `no_log_values` (as kubernetes.core does for kubeconfig secrets).
    That happens before the invocation is logged to the journal, and Ansible then removes them from
    the result, its `invocation.module_args`, warnings and error messages, hence from AWX job events.
    """

    def _log_invocation(self):
        self._mask_nested_credentials()
        super(LlmopsModule, self)._log_invocation()

    def _mask_nested_credentials(self):
        self.no_log_values.update(credential_values(self.params))

    def fail_json(self, msg, **kwargs):
        # AnsibleModule.__init__ fails here when the arguments break a declared rule. Its required_if
        # message starts with the condition ("mode is prune but all of the following are missing: ...");
        # ours starts with the option to add, as every SpecError does, so people read the fix first.
        result = getattr(self, "validation_result", None)
        if result is not None and result.errors.errors and isinstance(result.errors[0], RequiredIfError):
            msg = required_if_message(self.required_if, self.params) or msg
        super(LlmopsModule, self).fail_json(msg=msg, **kwargs)


def required_if_message(rules, params):
    """The first unmet required_if rule, worded as a SpecError that names the missing options; None if all hold.

    A rule is (option, value, requirements[, any_one]) as AnsibleModule takes it. An option counts as
    missing when it is unset, as AnsibleModule counts it, or empty (`path: ""`, which AnsibleModule lets
    through and which no requirement is ever met by)."""
    for rule in rules or []:
        option, value, requirements = rule[:3]
        any_one = len(rule) > 3 and rule[3]
        if params.get(option) != value:
            continue
        missing = [name for name in requirements if _unset(params.get(name))]
        if any_one and len(missing) == len(requirements):
            return str(SpecError(" or ".join(missing), "one of them is required with %s=%s" % (option, value)))
        if missing and not any_one:
            return str(SpecError(", ".join(missing), "is required with %s=%s" % (option, value)))
    return None


def _unset(value):
    return value is None or (isinstance(value, (str, list, dict)) and not value)


def new_module(argument_spec, **kwargs):
    """An LlmopsModule, with check mode unless told otherwise; nested credentials are masked even when
    logging is off. kwargs are AnsibleModule's (required_if, mutually_exclusive, required_one_of, ...)."""
    kwargs.setdefault("supports_check_mode", True)
    module = LlmopsModule(argument_spec=argument_spec, **kwargs)
    module._mask_nested_credentials()
    unmet = required_if_message(module.required_if, module.params)  # the empty values AnsibleModule let through
    if unmet:
        module.fail_json(msg=unmet)
    return module


def run_module(argument_spec, run, **kwargs):
    """The main() of every module: run(module) returns the result dict; SpecError/ProviderError become one
    clear failure message.

    kwargs go to AnsibleModule, so dependencies between options are declared (required_if,
    mutually_exclusive, required_one_of, required_together, required_by) and checked before run()."""
    module = new_module(argument_spec, **kwargs)
    try:
        module.exit_json(**run(module))
    except LlmopsError as exc:
        module.fail_json(msg=str(exc))
