"""kube-bench report summaries (plugins/module_utils/kube_bench.py) on output in kube-bench's documented JSON
shape (docs/running.md "Output"; check/controls.go: Controls[].tests[].results[], Totals)."""
import json

import pytest

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError
from ansible_collections.llmops.platform.plugins.module_utils.kube_bench import summarize, summary_lines


def result(number, status, scored=True):
    return {"test_number": number, "test_desc": "Ensure check %s" % number, "audit": "/bin/ps -fC kubelet",
            "AuditEnv": "", "AuditConfig": "", "type": "", "remediation": "Fix %s" % number, "test_info": ["Fix"],
            "status": status, "actual_value": "", "scored": scored, "IsMultiple": False,
            "expected_result": "", "reason": ""}


def report():
    """Two sections of an EKS node benchmark and a policies section, as `kube-bench run --json` prints."""
    node = {"id": "3", "version": "eks-1.5.0", "detected_version": "1.33", "text": "Worker Node Security Configuration",
            "node_type": "node", "tests": [
                {"section": "3.1", "type": "", "pass": 3, "fail": 1, "warn": 0, "info": 0,
                 "desc": "Worker Node Configuration Files",
                 "results": [result("3.1.1", "PASS"), result("3.1.2", "PASS"), result("3.1.3", "FAIL"),
                             result("3.1.4", "PASS")]},
                {"section": "3.2", "type": "", "pass": 1, "fail": 1, "warn": 1, "info": 0, "desc": "Kubelet",
                 "results": [result("3.2.1", "PASS"), result("3.2.2", "FAIL"), result("3.2.3", "WARN", False)]}],
            "total_pass": 4, "total_fail": 2, "total_warn": 1, "total_info": 0}
    policies = {"id": "4", "version": "eks-1.5.0", "detected_version": "1.33", "text": "Policies", "node_type": "policies",
                "tests": [{"section": "4.1", "type": "", "pass": 0, "fail": 0, "warn": 2, "info": 0,
                           "desc": "RBAC and Service Accounts",
                           "results": [result("4.1.1", "WARN", False), result("4.1.2", "WARN", False)]}],
                "total_pass": 0, "total_fail": 0, "total_warn": 2, "total_info": 0}
    return {"Controls": [node, policies],
            "Totals": {"total_pass": 4, "total_fail": 2, "total_warn": 3, "total_info": 0}}


def test_summary_per_section_with_failed_ids():
    summary = summarize(report())
    assert summary["benchmark"] == "eks-1.5.0" and summary["result"] == "fail"
    assert summary["totals"] == {"pass": 4, "fail": 2, "warn": 3, "info": 0}
    by_id = {s["id"]: s for s in summary["sections"]}
    assert list(by_id) == ["3.1", "3.2", "4.1"]
    assert (by_id["3.1"]["pass"], by_id["3.1"]["fail"], by_id["3.1"]["failed"]) == (3, 1, ["3.1.3"])
    assert by_id["3.2"]["failed"] == ["3.2.2"] and by_id["3.2"]["warned"] == ["3.2.3"]
    assert by_id["4.1"]["node_type"] == "policies" and by_id["4.1"]["warn"] == 2
    assert [f["id"] for f in summary["failed"]] == ["3.1.3", "3.2.2"]
    assert summary["failed"][0]["remediation"] == "Fix 3.1.3" and summary["failed"][0]["section"] == "3.1"
    assert summary["warned"] == ["3.2.3", "4.1.1", "4.1.2"]


def test_totals_agree_with_kube_bench_own_totals():
    data = report()
    summary = summarize(data)
    assert summary["totals"] == dict((k.split("_")[1], v) for k, v in data["Totals"].items())


def test_pod_log_text_with_klog_lines_around_the_json():
    text = ("I0101 00:00:00.000000       1 util.go:1] Kubernetes version: 1.33\n"
            + json.dumps(report()) + "\n" + "I0101 00:00:01.000000       1 run.go:1] done\n")
    assert summarize(text)["totals"]["fail"] == 2


def test_older_list_shape_and_counters_without_results():
    data = report()["Controls"]
    for control in data:
        for group in control["tests"]:
            del group["results"]
    summary = summarize(data)
    assert summary["totals"] == {"pass": 4, "fail": 2, "warn": 3, "info": 0}
    assert summary["failed"] == []  # no results: counts only


def test_all_passing_is_a_pass():
    data = {"Controls": [{"id": "3", "version": "gke-1.6.0", "node_type": "node", "text": "Worker Nodes",
                          "tests": [{"section": "3.1", "desc": "Files", "pass": 1, "fail": 0, "warn": 0, "info": 0,
                                     "results": [result("3.1.1", "PASS")]}]}]}
    summary = summarize(data)
    assert summary["result"] == "pass" and summary["benchmark"] == "gke-1.6.0"
    assert summary_lines(summary)[-1] == "total (gke-1.6.0): 1 pass, 0 fail, 0 warn, 0 info"


def test_lines_name_the_failed_checks():
    lines = summary_lines(summarize(report()))
    assert lines[0] == "3.1 Worker Node Configuration Files: 3 pass, 1 fail, 0 warn, 0 info (failed: 3.1.3)"
    assert lines[-1] == "total (eks-1.5.0): 4 pass, 2 fail, 3 warn, 0 info"


@pytest.mark.parametrize("bad", ["error: unable to determine benchmark version\n", {"Totals": {}},
                                 {"Controls": []}, 42])
def test_output_without_a_report_is_an_error_that_says_so(bad):
    with pytest.raises(SpecError) as error:
        summarize(bad)
    assert "kube-bench report" in str(error.value)
