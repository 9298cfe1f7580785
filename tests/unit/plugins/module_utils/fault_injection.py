# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults the object-store fixture servers (GCS, Azure Blob) inject in front of their documented behaviour."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class Fault(object):
    """The next `times` matching requests get `status` (with the service's error `code`, where it has one),
    or a download cut after `cut` bytes. `after=True` does the work first and then answers the error: the
    data arrived, the answer was lost. `then(server)` runs once a cut was made."""

    def __init__(self, method, path_part, status=503, code=None, times=1, cut=None, after=False, query_part=None,
                 then=None, skip=0):
        self.method, self.path_part, self.status, self.code, self.times = method, path_part, status, code, times
        self.cut, self.after, self.query_part, self.then = cut, after, query_part, then
        self.skip = skip  # let this many matching requests through first

    def matches(self, method, path, query):
        return (self.times > 0 and method == self.method and self.path_part in path
                and (self.query_part is None or self.query_part in query))


class FaultInjector(object):
    """Mixin for a fixture server: `faults` to inject, `lock` guarding its state."""

    def fault(self, *args, **kwargs):
        self.faults.append(Fault(*args, **kwargs))

    def cut_for(self, method, path, query):
        """The cut fault for this request, if any; its `then(server)` runs once the cut was made."""
        with self.lock:
            for fault in self.faults:
                if fault.cut is not None and fault.matches(method, path, query):
                    fault.times -= 1
                    return fault
        return None
