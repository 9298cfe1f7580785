"""Role phases and areas as ansible-playbook sees them: tags select the right tasks, the internal role refuses to run.

Real ansible-playbook runs (--list-tasks, and one local run of the internal role); nothing is mocked.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]


def playbook(tmp_path, roles, *args):
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": roles}]))
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(path),
                           "-e", "ansible_python_interpreter=%s" % sys.executable] + list(args),
                          capture_output=True, text=True, cwd=str(ROOT), env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
                          check=False)


def listed(tmp_path, role, tags):
    """Names of the role's own tasks that --list-tasks shows for these tags."""
    run = playbook(tmp_path, ["llmops.platform." + role], "--list-tasks", "--tags", tags)
    assert run.returncode == 0, run.stdout + run.stderr
    return set(re.findall(r"^\s+llmops\.platform\.%s : (.+?)\tTAGS:" % role, run.stdout, re.M))


def task_names(role, tasks_file):
    names = set()

    def walk(tasks):
        for task in tasks or []:
            # An imported role's tasks are listed under that role's name, not the import's.
            if "name" in task and "block" not in task and "ansible.builtin.import_role" not in task:
                names.add(task["name"])
            for key in ("block", "rescue", "always"):
                walk(task.get(key))
    walk(yaml.safe_load((ROOT / "roles" / role / "tasks" / tasks_file).read_text()))
    return names


def test_hardening_area_tag_lists_that_area_only(tmp_path):
    shown = listed(tmp_path, "node_hardening", "node_hardening_ssh")
    assert task_names("node_hardening", "ssh.yml") <= shown
    assert not task_names("node_hardening", "sysctl.yml") & shown
    assert not task_names("node_hardening", "firewall.yml") & shown
    # The set-up every area depends on comes along.
    assert {"Check the role's inputs", "Load the OS family's package and path names"} <= shown


@pytest.mark.parametrize("tag, wanted, unwanted", [
    ("prometheus_configure", "configure.yml", "install.yml"),
    ("prometheus_install", "install.yml", "configure.yml"),
])
def test_prometheus_phase_tags(tmp_path, tag, wanted, unwanted):
    shown = listed(tmp_path, "prometheus", tag)
    assert task_names("prometheus", wanted) <= shown
    assert not task_names("prometheus", unwanted) & shown
    assert task_names("prometheus", "preflight.yml") <= shown


def test_internal_role_refuses_to_run_on_its_own(tmp_path):
    run = playbook(tmp_path, ["llmops.platform.common"])
    assert run.returncode != 0
    assert "llmops.platform.common is internal" in run.stdout + run.stderr
