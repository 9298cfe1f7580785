#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gpu_facts
short_description: Gather facts about the NVIDIA GPUs of a host
version_added: 0.1.0
description:
  - Reports the host's NVIDIA GPUs as the fact C(llmops_gpu) (C(ansible_facts.llmops_gpu)).
    The name is namespaced so that it never collides with facts Ansible or other collections gather.
  - With a working driver it reads C(nvidia-smi -q -x) (NVIDIA's XML report, nvsmi_device_v11 and v12 DTDs)
    for GPU names, memory, driver and CUDA versions, MIG mode and MIG devices, ECC error counts,
    temperatures and power draw.
  - Without C(nvidia-smi), or when it fails (no driver installed yet, driver not loaded, library
    mismatch), it falls back to the PCI bus in sysfs (vendor V(0x10de), PCI class V(0x03xxxx)) and
    reports the GPUs it finds there by device id, with the name and catalog type of the GPUs the
    collection's GPU catalog knows (T4, L4, A10G, A100 40/80GB, H100). Why C(nvidia-smi) failed is in
    C(nvidia_smi_error).
  - A host without an NVIDIA GPU gets C(llmops_gpu.present=false); that is not an error.
  - This module exists because C(ansible.builtin.setup) and community.general gather nothing about GPUs.
author:
  - llmops.platform maintainers (@llmops)
extends_documentation_fragment:
  - llmops.platform.read_only
options:
  nvidia_smi_path:
    description:
      - Path of the C(nvidia-smi) executable.
      - When not set, C(nvidia-smi) is looked up in E(PATH) and the usual system directories.
    type: path
  sysfs_root:
    description:
      - Where sysfs is mounted. Only tests and chroots need to change it.
    type: path
    default: /sys
attributes:
  facts:
    support: full
    description: Sets C(llmops_gpu).
notes:
  - C(nvidia-smi -q -x) does not name the MIG profile of a MIG device; MIG devices are reported with
    their GPU instance id, compute instance id, SM count and memory.
"""

EXAMPLES = r"""
- name: Find the node's GPUs
  llmops.platform.gpu_facts:

- name: Say what was found
  ansible.builtin.debug:
    msg: "{{ llmops_gpu.count }} x {{ llmops_gpu.gpus | map(attribute='name') | unique | join(', ') }}"
  when: llmops_gpu.present

- name: A GPU node without a GPU is a provisioning error
  ansible.builtin.assert:
    that: llmops_gpu.present
    fail_msg: "{{ inventory_hostname }} is in llmops_gpu_nodes but has no NVIDIA GPU"
  when: "'llmops_gpu_nodes' in group_names"

- name: Every GPU is the type the inventory asked for
  ansible.builtin.assert:
    that: llmops_gpu.catalog_types == [llmops_node_gpu_type]
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    llmops_gpu:
      description: The host's NVIDIA GPUs.
      returned: always
      type: complex
      contains:
        present:
          description: Whether the host has at least one NVIDIA GPU.
          type: bool
          sample: true
        source:
          description: Where the facts come from, V(nvidia-smi), V(sysfs), or V(none) (neither was readable).
          type: str
          sample: nvidia-smi
        count:
          description: Number of GPUs (MIG devices are not counted separately).
          type: int
          sample: 2
        driver_loaded:
          description: Whether C(nvidia-smi) talked to a loaded driver.
          type: bool
        driver_version:
          description: NVIDIA driver version; null unless read from C(nvidia-smi).
          type: str
          sample: 570.133.20
        cuda_version:
          description: Highest CUDA version the driver supports; null unless read from C(nvidia-smi).
          type: str
          sample: "12.8"
        mig_enabled:
          description: Whether MIG mode is currently enabled on at least one GPU.
          type: bool
        catalog_types:
          description: The GPU catalog types (V(nvidia-l4), V(nvidia-h100-80gb), ...) present, sorted, unique.
          type: list
          elements: str
          sample: [nvidia-h100-80gb]
        nvidia_smi_error:
          description: Why C(nvidia-smi) could not be used when it exists; null otherwise.
          type: str
        gpus:
          description:
            - One entry per GPU, ordered as C(nvidia-smi) (or the PCI bus) orders them.
            - Always C(index), C(pci_bus_id), C(pci_device_id) (V(0x2330)), C(name), C(catalog_type),
              C(kernel_driver).
            - From C(nvidia-smi) also C(uuid), C(serial), C(architecture), C(minor_number), C(vbios_version),
              C(persistence_mode), C(memory_total_mib), C(memory_used_mib), C(memory_free_mib),
              C(temperature_c), C(memory_temperature_c), C(power_draw_w), C(utilization_percent),
              C(mig) (C(current), C(pending) as booleans or null where MIG is not supported, and
              C(devices) with C(gpu_instance_id), C(compute_instance_id), C(multiprocessor_count),
              C(memory_total_mib), C(memory_used_mib)), and C(ecc) (C(current), C(pending),
              C(volatile) and C(aggregate) each with C(corrected) and C(uncorrected) counts).
            - From sysfs also C(pci_class); values sysfs cannot know are absent.
          type: list
          elements: dict
"""

from ansible_collections.llmops.platform.plugins.module_utils.entrypoint import run_module
from ansible_collections.llmops.platform.plugins.module_utils.gpu_info import (
    GpuInfoError,
    parse_nvidia_smi_xml,
    scan_sysfs,
)

ARGUMENT_SPEC = dict(
    nvidia_smi_path=dict(type="path"),
    sysfs_root=dict(type="path", default="/sys"),
)


def _first_line(*texts):
    for text in texts:
        for line in (text or "").splitlines():
            if line.strip():
                return line.strip()
    return ""


def gather(module):
    """Facts from nvidia-smi when it works, else from sysfs."""
    path = module.params["nvidia_smi_path"] or module.get_bin_path("nvidia-smi")
    error = None
    if path:
        # LC_ALL=C: the report's values ('34 C', 'Enabled') are not localised, but errors would be.
        rc, out, err = module.run_command([path, "-q", "-x"], environ_update={"LC_ALL": "C"})
        if rc == 0:
            try:
                return parse_nvidia_smi_xml(out)
            except GpuInfoError as exc:
                error = str(exc)
        else:
            error = "%s -q -x exited with %d: %s" % (path, rc, _first_line(out, err) or "no output")
    facts = scan_sysfs(module.params["sysfs_root"])
    facts["nvidia_smi_error"] = error
    if error and facts["present"]:
        module.warn("nvidia-smi could not be used (%s); GPUs were found on the PCI bus instead" % error)
    return facts


def run(module):
    return dict(changed=False, ansible_facts={"llmops_gpu": gather(module)})


def main():
    run_module(ARGUMENT_SPEC, run)


if __name__ == "__main__":
    main()
