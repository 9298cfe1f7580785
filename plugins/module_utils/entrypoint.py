# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one main() our modules share: parse arguments, mask credentials, run, turn our errors into fail_json."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError

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


def new_module(argument_spec, **kwargs):
    """An LlmopsModule with check mode; nested credentials are masked even when logging is off."""
    module = LlmopsModule(argument_spec=argument_spec, supports_check_mode=True, **kwargs)
    module._mask_nested_credentials()
    return module


def run_module(argument_spec, run, **kwargs):
    """run(module) returns the result dict; SpecError/ProviderError become one clear failure message.

    kwargs go to AnsibleModule (required_if, mutually_exclusive, ...)."""
    module = new_module(argument_spec, **kwargs)
    try:
        module.exit_json(**run(module))
    except LlmopsError as exc:
        module.fail_json(msg=str(exc))
