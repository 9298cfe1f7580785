# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one main() our modules share: parse arguments, run, turn our errors into fail_json."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError


def run_module(argument_spec, run):
    """run(module) returns the result dict; SpecError/ProviderError become one clear failure message."""
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        module.exit_json(**run(module))
    except LlmopsError as exc:
        module.fail_json(msg=str(exc))
