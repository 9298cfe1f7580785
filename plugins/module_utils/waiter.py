# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Poll until a condition holds, with a deadline and a message that says what was awaited."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.llmops.platform.plugins.module_utils.errors import WaitTimeout


def wait_for(probe, what, timeout, interval=2.0, clock=time.monotonic, sleep=time.sleep):
    """Call probe() until it returns (True, detail); give up after `timeout` seconds.

    probe returns (done, detail): detail is the last observed state, quoted in the timeout
    message so the user sees where it got stuck (e.g. "systemd state: starting").
    """
    deadline = clock() + timeout
    detail = "no state observed yet"
    while True:
        done, detail = probe()
        if done:
            return detail
        if clock() >= deadline:
            raise WaitTimeout(
                "timed out after %ss waiting for %s (last seen: %s)" % (timeout, what, detail),
                hint="raise wait_timeout, or check the resource with the provider's own tools",
            )
        sleep(min(interval, max(0.0, deadline - clock())))
