# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retry cloud calls that failed for reasons that pass: throttling, 5xx, dropped connections.

Capped exponential backoff with full jitter (sleep a random time between 0 and min(cap, base * 2^n)),
which spreads out many clients retrying at once better than fixed or un-jittered delays.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import time


def backoff_delays(attempts, base=1.0, cap=20.0, rand=random.random):
    """Delays before retry 1..attempts-1."""
    return [rand() * min(cap, base * (2 ** n)) for n in range(attempts - 1)]


def call_with_retry(func, is_transient, attempts=6, base=1.0, cap=20.0, sleep=time.sleep, rand=random.random):
    """Call func(); on an exception that is_transient(exc) says will pass, wait and try again.

    The last exception is re-raised once attempts are used up, and non-transient ones at once, so the
    caller maps them to a ProviderError with the provider's code.
    """
    delays = backoff_delays(attempts, base, cap, rand)
    for delay in delays + [None]:
        try:
            return func()
        except Exception as exc:  # pylint: disable=broad-except
            if delay is None or not is_transient(exc):
                raise
            sleep(delay)
    return None  # pragma: no cover - the loop returns or raises
