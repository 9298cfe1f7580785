"""gpu_facts runs in-process; nvidia-smi is a real executable (a script printing a recorded report)."""
import json
import pathlib

import pytest

from ansible_collections.llmops.platform.plugins.modules import gpu_facts

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "module_utils" / "fixtures" / "nvidia_smi"


def build_sysfs(root, host):
    """/sys/bus/pci/devices/<address>/{vendor,device,class} for `host` from sysfs_trees.json."""
    for address, files in json.loads((FIXTURES / "sysfs_trees.json").read_text())[host].items():
        device = root / "bus" / "pci" / "devices" / address
        device.mkdir(parents=True)
        for name, value in files.items():
            (device / name).write_text(value + "\n")
    return str(root)


@pytest.fixture
def sysfs_l4(tmp_path):
    return build_sysfs(tmp_path / "sys-l4", "l4_host")


@pytest.fixture
def sysfs_none(tmp_path):
    return build_sysfs(tmp_path / "sys-none", "no_gpu")


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Modules collect warnings process-wide; each in-process run here starts without any."""
    from ansible.module_utils.common import warnings
    warnings._global_warnings.clear()
    yield
    warnings._global_warnings.clear()


def warnings_of(result):
    """Warning texts, whether ansible-core returned them as strings or as structured events."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def fake_nvidia_smi(tmp_path, body, rc=0):
    """An nvidia-smi that prints `body` for `-q -x` (and fails on any other arguments) and exits with rc."""
    (tmp_path / "report").write_text(body)
    script = tmp_path / "nvidia-smi"
    script.write_text('#!/bin/sh\n[ "$1 $2" = "-q -x" ] || { echo "unexpected arguments: $*" >&2; exit 2; }\n'
                      'cat "%s"\nexit %d\n' % (tmp_path / "report", rc))
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize("check_mode", [False, True])
def test_reads_nvidia_smi_in_normal_and_check_mode(run_module, tmp_path, sysfs_none, check_mode):
    smi = fake_nvidia_smi(tmp_path, (FIXTURES / "h100_mig_driver570.xml").read_text())
    result = run_module(gpu_facts.main, {"nvidia_smi_path": smi, "sysfs_root": sysfs_none}, check_mode=check_mode)
    assert result["changed"] is False and not result.failed
    gpu = result["ansible_facts"]["llmops_gpu"]
    assert gpu["source"] == "nvidia-smi" and gpu["present"] is True and gpu["count"] == 2
    assert gpu["driver_version"] == "570.133.20" and gpu["mig_enabled"] is True
    assert gpu["gpus"][0]["mig"]["devices"][1]["gpu_instance_id"] == 2
    assert gpu["nvidia_smi_error"] is None
    assert warnings_of(result) == []


def test_falls_back_to_sysfs_when_the_driver_is_not_loaded(run_module, tmp_path, sysfs_l4):
    smi = fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
                                    "Make sure that the latest NVIDIA driver is installed and running.\n", rc=9)
    result = run_module(gpu_facts.main, {"nvidia_smi_path": smi, "sysfs_root": sysfs_l4})
    gpu = result["ansible_facts"]["llmops_gpu"]
    assert gpu["source"] == "sysfs" and gpu["count"] == 3 and gpu["driver_loaded"] is False
    assert gpu["catalog_types"] == ["nvidia-l4"]
    assert gpu["nvidia_smi_error"].startswith("%s -q -x exited with 9: NVIDIA-SMI has failed" % smi)
    assert any("GPUs were found on the PCI bus instead" in w for w in warnings_of(result))


def test_falls_back_to_sysfs_when_nvidia_smi_prints_no_xml(run_module, tmp_path, sysfs_l4):
    smi = fake_nvidia_smi(tmp_path, "Failed to initialize NVML: Driver/library version mismatch\n")
    result = run_module(gpu_facts.main, {"nvidia_smi_path": smi, "sysfs_root": sysfs_l4})
    gpu = result["ansible_facts"]["llmops_gpu"]
    assert gpu["source"] == "sysfs" and gpu["present"] is True
    assert "did not print XML" in gpu["nvidia_smi_error"]


def test_no_nvidia_smi_and_no_gpu_is_a_plain_answer(run_module, tmp_path, sysfs_none, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nvidia-smi is not installed
    result = run_module(gpu_facts.main, {"sysfs_root": sysfs_none})
    assert not result.failed and result["changed"] is False and not result.get("warnings")
    assert result["ansible_facts"]["llmops_gpu"] == {
        "present": False, "source": "sysfs", "count": 0, "driver_version": None, "cuda_version": None,
        "driver_loaded": False, "mig_enabled": False, "catalog_types": [], "gpus": [], "nvidia_smi_error": None}


def test_driver_without_devices_reports_no_gpu(run_module, tmp_path, sysfs_none):
    smi = fake_nvidia_smi(tmp_path, "No devices were found\n", rc=6)
    result = run_module(gpu_facts.main, {"nvidia_smi_path": smi, "sysfs_root": sysfs_none})
    gpu = result["ansible_facts"]["llmops_gpu"]
    assert gpu["present"] is False and gpu["nvidia_smi_error"].endswith("exited with 6: No devices were found")
    assert warnings_of(result) == []


def test_unknown_option_fails_with_its_name(run_module):
    result = run_module(gpu_facts.main, {"sysfs": "/sys"})
    assert result.failed and "sysfs" in result["msg"]
