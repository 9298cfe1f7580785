"""gpu_info parses real-shaped `nvidia-smi -q -x` reports (driver 470 / 535 / 570) and sysfs PCI trees.

The fixtures follow NVIDIA's DTDs (nvsmi_device_v11.dtd for the 470 T4 report, v12 for the others);
every assertion names a concrete value from them.
"""
import json
import os
import pathlib

import pytest

from ansible_collections.llmops.platform.plugins.module_utils import gpu_info
from ansible_collections.llmops.platform.plugins.module_utils.gpu_catalog import GPU_TYPES

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "nvidia_smi"


def report(name):
    return (FIXTURES / name).read_text()


def sysfs(tmp_path, host):
    """Build /sys/bus/pci/devices/<address>/{vendor,device,class} for `host` from sysfs_trees.json."""
    root = tmp_path / "sys"
    root.mkdir(exist_ok=True)
    for address, files in json.loads((FIXTURES / "sysfs_trees.json").read_text())[host].items():
        device = root / "bus" / "pci" / "devices" / address
        device.mkdir(parents=True)
        for name, value in files.items():
            (device / name).write_text(value + "\n")
    return str(root)


def test_t4_on_driver_470_with_old_style_ecc_counters():
    facts = gpu_info.parse_nvidia_smi_xml(report("t4_driver470.xml"))
    assert facts["present"] is True and facts["source"] == "nvidia-smi" and facts["count"] == 1
    assert facts["driver_version"] == "470.182.03" and facts["cuda_version"] == "11.4"
    assert facts["driver_loaded"] is True and facts["mig_enabled"] is False
    assert facts["catalog_types"] == ["nvidia-t4"]
    gpu = facts["gpus"][0]
    assert gpu["name"] == "Tesla T4"
    assert gpu["architecture"] is None  # v11 reports have no <product_architecture>
    assert gpu["pci_bus_id"] == "00000000:00:1E.0" and gpu["pci_device_id"] == "0x1eb8"
    assert gpu["uuid"] == "GPU-6d1c3a2b-8f0e-4c55-9b7a-2e41f0c9d813"
    assert (gpu["memory_total_mib"], gpu["memory_used_mib"], gpu["memory_free_mib"]) == (15109, 0, 15109)
    assert gpu["mig"] == {"current": None, "pending": None, "devices": []}  # T4 cannot do MIG: N/A
    assert gpu["ecc"]["current"] is True
    assert gpu["ecc"]["volatile"] == {"corrected": 2, "uncorrected": 0}
    assert gpu["ecc"]["aggregate"] == {"corrected": 17, "uncorrected": 0}
    assert gpu["temperature_c"] == 31 and gpu["memory_temperature_c"] is None
    assert gpu["power_draw_w"] == pytest.approx(9.82)  # <power_readings><power_draw>
    assert gpu["persistence_mode"] is False and gpu["utilization_percent"] == 0


def test_h100_pair_with_mig_on_one_gpu_driver_570():
    facts = gpu_info.parse_nvidia_smi_xml(report("h100_mig_driver570.xml"))
    assert facts["count"] == 2 and facts["driver_version"] == "570.133.20" and facts["cuda_version"] == "12.8"
    assert facts["mig_enabled"] is True
    assert facts["catalog_types"] == ["nvidia-h100-80gb"]
    mig_gpu, plain_gpu = facts["gpus"]
    assert [g["index"] for g in facts["gpus"]] == [0, 1]
    assert mig_gpu["name"] == "NVIDIA H100 80GB HBM3" and mig_gpu["architecture"] == "Hopper"
    assert mig_gpu["pci_bus_id"] == "00000000:18:00.0" and mig_gpu["pci_device_id"] == "0x2330"
    assert mig_gpu["mig"]["current"] is True and mig_gpu["mig"]["pending"] is True
    assert mig_gpu["mig"]["devices"] == [
        {"index": 0, "gpu_instance_id": 1, "compute_instance_id": 0, "multiprocessor_count": 60,
         "memory_total_mib": 40448, "memory_used_mib": 13},
        {"index": 1, "gpu_instance_id": 2, "compute_instance_id": 0, "multiprocessor_count": 60,
         "memory_total_mib": 40448, "memory_used_mib": 38957},
    ]
    assert mig_gpu["utilization_percent"] is None  # not reported per GPU under MIG
    assert mig_gpu["power_draw_w"] == pytest.approx(118.64)  # <instant_power_draw>, not the average
    assert mig_gpu["ecc"]["aggregate"] == {"corrected": 4, "uncorrected": 0}
    assert (mig_gpu["temperature_c"], mig_gpu["memory_temperature_c"]) == (36, 44)

    assert plain_gpu["mig"] == {"current": False, "pending": False, "devices": []}
    assert plain_gpu["memory_used_mib"] == 61211 and plain_gpu["utilization_percent"] == 87
    # sram_uncorrectable_parity + sram_uncorrectable_secded + dram_uncorrectable
    assert plain_gpu["ecc"]["volatile"] == {"corrected": 1, "uncorrected": 0}
    assert plain_gpu["ecc"]["aggregate"] == {"corrected": 12, "uncorrected": 1}
    assert plain_gpu["persistence_mode"] is True and plain_gpu["temperature_c"] == 52


def test_a100_on_driver_535_with_mig_pending():
    facts = gpu_info.parse_nvidia_smi_xml(report("a100_driver535.xml"))
    gpu = facts["gpus"][0]
    assert facts["driver_version"] == "535.183.01" and facts["cuda_version"] == "12.2"
    assert gpu["name"] == "NVIDIA A100-SXM4-40GB" and gpu["catalog_type"] == "nvidia-a100-40gb"
    # MIG was switched on but the GPU was not reset yet: current off, pending on; facts say so.
    assert gpu["mig"]["current"] is False and gpu["mig"]["pending"] is True
    assert facts["mig_enabled"] is False
    assert gpu["ecc"]["volatile"] == {"corrected": 3, "uncorrected": 0}
    assert gpu["ecc"]["aggregate"] == {"corrected": 17, "uncorrected": 1}
    assert gpu["power_draw_w"] == pytest.approx(54.16)  # <gpu_power_readings><power_draw>
    assert gpu["memory_total_mib"] == 40960 and gpu["memory_temperature_c"] == 37


@pytest.mark.parametrize("text, message", [
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", "did not print XML"),
    ("<?xml version=\"1.0\" ?><something_else/>", "not <nvidia_smi_log>"),
    ("<nvidia_smi_log><attached_gpus>2</attached_gpus><gpu id=\"0\"/></nvidia_smi_log>", "reports 2 attached GPUs"),
])
def test_anything_but_the_report_is_an_error(text, message):
    with pytest.raises(gpu_info.GpuInfoError, match=message):
        gpu_info.parse_nvidia_smi_xml(text)


def test_a_report_without_gpus_means_no_gpu():
    facts = gpu_info.parse_nvidia_smi_xml("<nvidia_smi_log><driver_version>550.54.15</driver_version>"
                                          "<attached_gpus>0</attached_gpus></nvidia_smi_log>")
    assert facts["present"] is False and facts["count"] == 0 and facts["driver_version"] == "550.54.15"


def test_sysfs_finds_nvidia_display_controllers_only(tmp_path):
    facts = gpu_info.scan_sysfs(sysfs(tmp_path, "l4_host"))
    assert facts["source"] == "sysfs" and facts["driver_loaded"] is False and facts["driver_version"] is None
    # virtio NIC and the NVIDIA HDMI audio function (class 0x0403) are skipped.
    assert [g["pci_bus_id"] for g in facts["gpus"]] == ["0000:38:00.0", "0000:3a:00.0", "0000:41:00.0"]
    assert [g["pci_device_id"] for g in facts["gpus"]] == ["0x27b8", "0x27b8", "0x2684"]
    assert [g["catalog_type"] for g in facts["gpus"]] == ["nvidia-l4", "nvidia-l4", None]
    assert facts["gpus"][0]["name"] == "NVIDIA L4" and facts["gpus"][2]["name"] is None
    assert facts["count"] == 3 and facts["catalog_types"] == ["nvidia-l4"]
    assert [g["kernel_driver"] for g in facts["gpus"]] == [None, None, None]


def test_sysfs_reports_the_kernel_driver_bound_to_the_gpu(tmp_path):
    tree = pathlib.Path(sysfs(tmp_path, "l4_host"))
    (tmp_path / "drivers" / "nouveau").mkdir(parents=True)
    os.symlink(str(tmp_path / "drivers" / "nouveau"), str(tree / "bus/pci/devices/0000:38:00.0/driver"))
    facts = gpu_info.scan_sysfs(str(tree))
    assert facts["gpus"][0]["kernel_driver"] == "nouveau" and facts["gpus"][1]["kernel_driver"] is None


@pytest.mark.parametrize("host", ["no_gpu", None])
def test_sysfs_without_nvidia_gpus(tmp_path, host):
    facts = gpu_info.scan_sysfs(sysfs(tmp_path, host) if host else str(tmp_path / "does-not-exist"))
    assert facts == gpu_info.empty("sysfs")
    assert facts["present"] is False and facts["gpus"] == []


def test_the_pci_table_only_names_catalog_gpus():
    assert set(catalog_type for _name, catalog_type in gpu_info.PCI_DEVICES.values()) == set(GPU_TYPES)
