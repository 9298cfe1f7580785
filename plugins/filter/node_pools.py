# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over node pools and cluster reports; the logic is in plugins/module_utils (unit-tested)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError
from ansible_collections.llmops.platform.plugins.module_utils.kube_bench import summarize, summary_lines
from ansible_collections.llmops.platform.plugins.module_utils.node_count import apply_gpu_node_count


def gpu_node_count(pools, count):
    try:
        return apply_gpu_node_count(pools, count)
    except LlmopsError as error:
        raise AnsibleFilterError(str(error))


def kube_bench_summary(report):
    try:
        return summarize(report)
    except LlmopsError as error:
        raise AnsibleFilterError(str(error))


def kube_bench_lines(summary):
    return summary_lines(summary)


class FilterModule(object):
    def filters(self):
        return {"gpu_node_count": gpu_node_count, "kube_bench_summary": kube_bench_summary,
                "kube_bench_lines": kube_bench_lines}
