# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summaries of kube-bench (CIS Kubernetes Benchmark) reports. Plain Python, used by the
`llmops.platform.kube_bench_summary` filter in roles/kube_bench.

Input: what `kube-bench run --json` prints, as text (a pod's log, where klog lines on stderr may come
before or after the JSON document) or already parsed. kube-bench's documented JSON shape
(docs/running.md "Output", check/controls.go), since v0.3:

    {"Controls": [{"id": "3", "version": "eks-1.5.0", "detected_version": "1.33", "text": "...",
                   "node_type": "node",
                   "tests": [{"section": "3.1", "desc": "...", "pass": 1, "fail": 0, "warn": 2, "info": 0,
                              "results": [{"test_number": "3.1.1", "test_desc": "...", "status": "PASS",
                                           "scored": true, "remediation": "...", ...}]}],
                   "total_pass": 1, "total_fail": 0, "total_warn": 2, "total_info": 0}],
     "Totals": {"total_pass": ..., "total_fail": ..., "total_warn": ..., "total_info": ...}}

Older releases printed the list of controls alone (no "Controls"/"Totals" wrapper); both are read.
Counts come from the results' own status when results are present (the section counters otherwise), so
a report whose counters disagree with its results is summarised by what was actually checked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError

STATUSES = ("pass", "fail", "warn", "info")
FIELD = "kube-bench report"


def _parse_text(text):
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char in "{[" and (index == 0 or text[index - 1] == "\n"):
            try:
                document, dummy_end = decoder.raw_decode(text[index:])
            except ValueError:
                continue
            if isinstance(document, dict) and "Controls" in document or isinstance(document, list):
                return document
    raise SpecError(FIELD, "no kube-bench JSON document found in the output (%d characters)" % len(text),
                    hint="run kube-bench with --json; the first lines of the pod log show why it did not report")


def _controls(report):
    if isinstance(report, (bytes, bytearray)):
        report = report.decode("utf-8", "replace")
    if isinstance(report, str):
        report = _parse_text(report)
    if isinstance(report, dict):
        controls = report.get("Controls")
    else:
        controls = report
    if not isinstance(controls, list):
        raise SpecError(FIELD, "has no list of Controls", hint="expected the output of kube-bench run --json")
    return controls


def summarize(report):
    """{'benchmark', 'result', 'totals': {pass, fail, warn, info}, 'sections': [...], 'failed': [...],
    'warned': [ids]} for a kube-bench report (text or parsed)."""
    totals = dict((s, 0) for s in STATUSES)
    sections, failed, warned, benchmarks = [], [], [], []
    for control in _controls(report):
        if not isinstance(control, dict):
            raise SpecError(FIELD, "a control is not a mapping: %r" % (control,))
        version = control.get("version") or ""
        if version and version not in benchmarks:
            benchmarks.append(version)
        for group in control.get("tests") or []:
            counts = dict((s, 0) for s in STATUSES)
            results = group.get("results")
            section = {"id": str(group.get("section", "")), "text": group.get("desc", ""),
                       "control": str(control.get("id", "")), "node_type": control.get("node_type", ""),
                       "failed": [], "warned": []}
            if results:
                for result in results:
                    status = str(result.get("status", "")).lower()
                    number = str(result.get("test_number", ""))
                    if status not in counts:
                        continue
                    counts[status] += 1
                    if status == "fail":
                        section["failed"].append(number)
                        failed.append({"id": number, "text": result.get("test_desc", ""), "section": section["id"],
                                       "scored": bool(result.get("scored", False)),
                                       "remediation": result.get("remediation", "")})
                    elif status == "warn":
                        section["warned"].append(number)
                        warned.append(number)
            else:
                for status in STATUSES:
                    counts[status] = int(group.get(status) or 0)
            section.update(counts)
            for status in STATUSES:
                totals[status] += counts[status]
            sections.append(section)
    if not sections:
        raise SpecError(FIELD, "lists no checks", hint="check the benchmark name (kube_bench_benchmark) and targets")
    return {"benchmark": ", ".join(benchmarks), "result": "fail" if totals["fail"] else "pass",
            "totals": totals, "sections": sections, "failed": failed, "warned": warned}


def summary_lines(summary):
    """One line per section plus the totals, for the play output."""
    lines = ["%s %s: %d pass, %d fail, %d warn, %d info%s" % (
        s["id"], s["text"], s["pass"], s["fail"], s["warn"], s["info"],
        (" (failed: %s)" % ", ".join(s["failed"])) if s["failed"] else "") for s in summary["sections"]]
    totals = summary["totals"]
    lines.append("total (%s): %d pass, %d fail, %d warn, %d info" % (
        summary["benchmark"] or "benchmark", totals["pass"], totals["fail"], totals["warn"], totals["info"]))
    return lines
