# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What NVIDIA GPUs a host has, read from `nvidia-smi -q -x` or, without a working driver, from sysfs.

Plain Python, no Ansible: the gpu_facts module runs the command and hands the text here.

Sources:
- `nvidia-smi -q -x` follows NVIDIA's DTDs (nvsmi_device_v11.dtd with drivers up to the 470 series,
  nvsmi_device_v12.dtd since). ECC counters changed shape between them: older drivers report
  <single_bit>/<double_bit> groups each with a <total>; newer ones report <sram_correctable>,
  <sram_uncorrectable> (or <sram_uncorrectable_parity> + <sram_uncorrectable_secded> since 550),
  <dram_correctable>, <dram_uncorrectable>. Power moved from <power_readings><power_draw> to
  <gpu_power_readings><power_draw> (525+) and <instant_power_draw> (550+). Both shapes are read.
- sysfs: /sys/bus/pci/devices/<address>/{vendor,device,class}, vendor 0x10de is NVIDIA, PCI class
  0x03xxxx is a display controller (the GPU itself; the board's HDMI audio 0x0403xx and USB-C 0x0c03xx
  functions are skipped). Device ids for the catalog GPUs are from the PCI ID repository (pci.ids).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import xml.etree.ElementTree as ET

from ansible_collections.llmops.platform.plugins.module_utils.errors import LlmopsError

NVIDIA_VENDOR_ID = "0x10de"

# PCI device id -> (marketing name, our catalog GPU type from gpu_catalog.GPU_TYPES).
# Only the GPUs the catalog offers; anything else is still reported, with catalog_type None.
PCI_DEVICES = {
    "0x1eb8": ("NVIDIA Tesla T4", "nvidia-t4"),
    "0x27b8": ("NVIDIA L4", "nvidia-l4"),
    "0x2237": ("NVIDIA A10G", "nvidia-a10g"),
    "0x20b0": ("NVIDIA A100-SXM4-40GB", "nvidia-a100-40gb"),
    "0x20f1": ("NVIDIA A100-PCIE-40GB", "nvidia-a100-40gb"),
    "0x20b2": ("NVIDIA A100-SXM4-80GB", "nvidia-a100-80gb"),
    "0x20b5": ("NVIDIA A100 80GB PCIe", "nvidia-a100-80gb"),
    "0x2330": ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb"),
    "0x2331": ("NVIDIA H100 PCIe", "nvidia-h100-80gb"),
    "0x26b9": ("NVIDIA L40S", "nvidia-l40s"),
    "0x2321": ("NVIDIA H100 NVL", "nvidia-h100-nvl"),
    "0x2335": ("NVIDIA H200", "nvidia-h200"),
}


class GpuInfoError(LlmopsError):
    """nvidia-smi answered something that is not the XML report we know."""


def _text(node, path):
    """Stripped text at `path` under `node`; None when missing, empty, 'N/A' or a '[...]' error marker."""
    if node is None:
        return None
    found = node.find(path)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    if not value or value in ("N/A", "None") or value.startswith("["):
        # '[N/A]', '[Not Supported]', '[Unknown Error]' are how nvidia-smi says it could not read a value.
        return None
    return value


def _number(value, kind=int):
    """The leading number of '81559 MiB', '34 C', '71.50 W'; None when there is none."""
    if value is None:
        return None
    match = re.match(r"^\s*(-?\d+(?:\.\d+)?)", value)
    if not match:
        return None
    return kind(float(match.group(1))) if kind is int else kind(match.group(1))


def _enabled(value):
    """'Enabled' -> True, 'Disabled' -> False, anything else (N/A: not supported) -> None."""
    if value == "Enabled":
        return True
    if value == "Disabled":
        return False
    return None


def _sum(values):
    """Sum of the counters that were reported; None when none was (ECC off or not supported)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _ecc_counts(group):
    """{'corrected': n, 'uncorrected': n} for an <ecc_errors>/<volatile> or <aggregate> element."""
    if group is None:
        return {"corrected": None, "uncorrected": None}
    if group.find("single_bit") is not None or group.find("double_bit") is not None:
        # nvsmi_device_v11 and earlier: per-location counters plus a total per error type.
        return {"corrected": _number(_text(group, "single_bit/total")),
                "uncorrected": _number(_text(group, "double_bit/total"))}
    corrected = _sum([_number(_text(group, name)) for name in ("sram_correctable", "dram_correctable")])
    uncorrected = _sum([_number(_text(group, name)) for name in
                        ("sram_uncorrectable", "sram_uncorrectable_parity", "sram_uncorrectable_secded",
                         "dram_uncorrectable")])
    return {"corrected": corrected, "uncorrected": uncorrected}


def _power_draw(gpu):
    for path in ("gpu_power_readings/instant_power_draw", "gpu_power_readings/power_draw",
                 "gpu_power_readings/average_power_draw", "power_readings/power_draw"):
        value = _number(_text(gpu, path), float)
        if value is not None:
            return value
    return None


def _device_id(pci_device_id):
    """'233010DE' (nvidia-smi: device id then vendor id) -> '0x2330'."""
    if not pci_device_id or len(pci_device_id) != 8:
        return None
    return "0x" + pci_device_id[:4].lower()


def _mig_device(node):
    shared = node.find("device_attributes/shared")
    return {
        "index": _number(_text(node, "index")),
        "gpu_instance_id": _number(_text(node, "gpu_instance_id")),
        "compute_instance_id": _number(_text(node, "compute_instance_id")),
        "multiprocessor_count": _number(_text(shared, "multiprocessor_count")),
        "memory_total_mib": _number(_text(node, "fb_memory_usage/total")),
        "memory_used_mib": _number(_text(node, "fb_memory_usage/used")),
    }


def _gpu(index, node):
    device_id = _device_id(_text(node, "pci/pci_device_id"))
    catalog = PCI_DEVICES.get(device_id)
    return {
        "index": index,
        "minor_number": _number(_text(node, "minor_number")),
        "pci_bus_id": node.get("id") or _text(node, "pci/pci_bus_id"),
        "pci_device_id": device_id,
        "name": _text(node, "product_name"),
        "architecture": _text(node, "product_architecture"),
        "catalog_type": catalog[1] if catalog else None,
        "uuid": _text(node, "uuid"),
        "serial": _text(node, "serial"),
        "vbios_version": _text(node, "vbios_version"),
        "persistence_mode": _enabled(_text(node, "persistence_mode")),
        "memory_total_mib": _number(_text(node, "fb_memory_usage/total")),
        "memory_used_mib": _number(_text(node, "fb_memory_usage/used")),
        "memory_free_mib": _number(_text(node, "fb_memory_usage/free")),
        "mig": {
            "current": _enabled(_text(node, "mig_mode/current_mig")),
            "pending": _enabled(_text(node, "mig_mode/pending_mig")),
            "devices": [_mig_device(d) for d in node.findall("mig_devices/mig_device")],
        },
        "ecc": {
            "current": _enabled(_text(node, "ecc_mode/current_ecc")),
            "pending": _enabled(_text(node, "ecc_mode/pending_ecc")),
            "volatile": _ecc_counts(node.find("ecc_errors/volatile")),
            "aggregate": _ecc_counts(node.find("ecc_errors/aggregate")),
        },
        "temperature_c": _number(_text(node, "temperature/gpu_temp")),
        "memory_temperature_c": _number(_text(node, "temperature/memory_temp")),
        "power_draw_w": _power_draw(node),
        "utilization_percent": _number(_text(node, "utilization/gpu_util")),
        "kernel_driver": "nvidia",
    }


def empty(source="none"):
    """The facts of a host without NVIDIA GPUs."""
    return {"present": False, "source": source, "count": 0, "driver_version": None, "cuda_version": None,
            "driver_loaded": False, "mig_enabled": False, "catalog_types": [], "gpus": [],
            "nvidia_smi_error": None}


def _summarise(facts):
    gpus = facts["gpus"]
    facts["count"] = len(gpus)
    facts["present"] = bool(gpus)
    facts["mig_enabled"] = any(g.get("mig", {}).get("current") for g in gpus)
    facts["catalog_types"] = sorted(set(g["catalog_type"] for g in gpus if g.get("catalog_type")))
    return facts


def parse_nvidia_smi_xml(text):
    """Facts from the output of `nvidia-smi -q -x`. Raises GpuInfoError on anything that is not that report."""
    # The report starts with a DOCTYPE naming the DTD; ElementTree does not fetch it.
    try:
        root = ET.fromstring(text.strip().encode("utf-8") if hasattr(text, "encode") else text)
    except ET.ParseError as exc:
        raise GpuInfoError("nvidia-smi -q -x did not print XML (%s)" % exc,
                           hint="run it by hand on the host; a driver/library version mismatch prints plain text")
    if root.tag != "nvidia_smi_log":
        raise GpuInfoError("nvidia-smi -q -x printed <%s>, not <nvidia_smi_log>" % root.tag)
    facts = empty("nvidia-smi")
    facts["driver_version"] = _text(root, "driver_version")
    facts["cuda_version"] = _text(root, "cuda_version")
    facts["driver_loaded"] = True
    facts["gpus"] = [_gpu(i, node) for i, node in enumerate(root.findall("gpu"))]
    attached = _number(_text(root, "attached_gpus"))
    if attached is not None and attached != len(facts["gpus"]):
        raise GpuInfoError("nvidia-smi reports %d attached GPUs but describes %d" % (attached, len(facts["gpus"])))
    return _summarise(facts)


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip().lower()
    except (IOError, OSError):
        return None


def scan_sysfs(sysfs_root="/sys"):
    """Facts from PCI ids: which NVIDIA GPUs are on the bus, whatever driver (if any) holds them."""
    facts = empty("sysfs")
    found = []
    for device in sorted(glob.glob(os.path.join(sysfs_root, "bus", "pci", "devices", "*"))):
        if _read(os.path.join(device, "vendor")) != NVIDIA_VENDOR_ID:
            continue
        pci_class = _read(os.path.join(device, "class")) or ""
        if not pci_class.startswith("0x03"):
            continue
        device_id = _read(os.path.join(device, "device"))
        catalog = PCI_DEVICES.get(device_id)
        driver_link = os.path.join(device, "driver")
        driver = os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None
        found.append({
            "index": len(found),
            "pci_bus_id": os.path.basename(device),
            "pci_device_id": device_id,
            "pci_class": pci_class,
            "name": catalog[0] if catalog else None,
            "catalog_type": catalog[1] if catalog else None,
            "kernel_driver": driver,
        })
    facts["gpus"] = found
    return _summarise(facts)
