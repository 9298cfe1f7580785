"""The platform's Prometheus rules are valid and every alert is unit-tested with promtool.

Rule files live in roles/prometheus/files/rules/, their promtool unit tests in tests/prometheus/.
promtool comes from Debian's `prometheus` package (scripts/bootstrap.sh installs it); without it these
tests fail rather than skip, because untested alert rules are the bug they exist to catch.
"""
import pathlib
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
RULES = sorted((ROOT / "roles" / "prometheus" / "files" / "rules").glob("*.rules.yml"))
TESTS = sorted((ROOT / "tests" / "prometheus").glob("*.test.yml"))
DOCS = ROOT / "docs" / "observability.md"


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (scripts/bootstrap.sh does)")
    return path


def run(*args):
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    return result.returncode, result.stdout + result.stderr


def alerts(path):
    groups = yaml.safe_load(path.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_there_are_rules_and_tests():
    assert RULES, "no rule files under roles/prometheus/files/rules/"
    assert TESTS, "no promtool unit tests under tests/prometheus/"


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_rule_file_is_valid(path):
    code, output = run("check", "rules", str(path))
    assert code == 0, output


@pytest.mark.parametrize("path", TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path):
    code, output = run("test", "rules", str(path))
    assert code == 0, output


def test_every_alert_has_a_unit_test_that_fires_it():
    tested = set()
    for path in TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    tested.add(check["alertname"])
    defined = {rule["alert"] for path in RULES for rule in alerts(path)}
    assert defined - tested == set(), "alerts without a promtool test that fires them"


def test_every_test_file_targets_the_repository_rules():
    for path in TESTS:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            assert (path.parent / rule_file).resolve() in RULES, "%s: %s is not a shipped rule file" % (path.name, rule_file)


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_alerts_have_severity_summary_and_a_documented_runbook(path):
    docs = DOCS.read_text()
    for rule in alerts(path):
        assert rule.get("labels", {}).get("severity") in ("critical", "warning", "info"), rule["alert"]
        assert rule.get("annotations", {}).get("summary"), rule["alert"]
        runbook = rule.get("annotations", {}).get("runbook", "")
        assert runbook.startswith("docs/observability.md#"), rule["alert"]
        anchor = runbook.split("#", 1)[1]
        assert "### %s" % anchor in docs.lower(), "%s: no '### ...' heading for #%s in docs/observability.md" % (
            rule["alert"], anchor)
