# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors raised by module_utils, shaped so a module can turn them into one clear fail_json message."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class LlmopsError(Exception):
    """Base error: a message for people, plus what to do about it."""

    def __init__(self, message, hint=None):
        super(LlmopsError, self).__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self):
        return "%s. %s" % (self.message, self.hint) if self.hint else self.message


class SpecError(LlmopsError):
    """Bad user input. `field` is the option path as the user wrote it, e.g. node_pools[0].count."""

    def __init__(self, field, message, hint=None):
        super(SpecError, self).__init__("%s: %s" % (field, message), hint)
        self.field = field


class ProviderError(LlmopsError):
    """A provider call failed. `code` is the provider's own error code when it gave one."""

    def __init__(self, message, code=None, hint=None):
        super(ProviderError, self).__init__(message, hint)
        self.code = code

    def __str__(self):
        text = self.message
        if self.code:
            text = "%s (provider error code: %s)" % (text, self.code)
        return "%s. %s" % (text, self.hint) if self.hint else text


class WaitTimeout(ProviderError):
    """A waiter gave up. The message says what it waited for and what it saw last."""
