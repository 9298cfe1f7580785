# -*- coding: utf-8 -*-
# Copyright: contributors to llmops.platform
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One place that maps a cloud-neutral GPU name and count to each cloud's machine shapes.

An inventory asks for `gpu: {type: nvidia-l4, count: 1}` and stays cloud-neutral; the provider gets
the instance types (AWS), machine + accelerator types (GCP) or VM sizes (Azure) that carry exactly
that many GPUs, smallest first, which is also the order capacity fallback walks through.

Sources: the clouds' published instance-type pages (AWS accelerated computing instances, GCP GPU
machine types, Azure GPU-optimized VM sizes). Shapes with fractional GPUs are left out on purpose.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import namedtuple

from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError

# instance_type: the cloud's name for the shape; gpus: whole GPUs it carries;
# accelerator: GCP's acceleratorType for the GPU (None elsewhere, where the shape implies it).
Shape = namedtuple("Shape", ["instance_type", "gpus", "accelerator"])


def _shapes(gpus_by_type, accelerator=None):
    return tuple(Shape(name, gpus, accelerator) for name, gpus in gpus_by_type)


CATALOG = {
    "aws": {
        "nvidia-t4": _shapes([("g4dn.xlarge", 1), ("g4dn.2xlarge", 1), ("g4dn.4xlarge", 1), ("g4dn.8xlarge", 1),
                              ("g4dn.16xlarge", 1), ("g4dn.12xlarge", 4), ("g4dn.metal", 8)]),
        "nvidia-l4": _shapes([("g6.xlarge", 1), ("g6.2xlarge", 1), ("g6.4xlarge", 1), ("g6.8xlarge", 1),
                              ("g6.16xlarge", 1), ("g6.12xlarge", 4), ("g6.24xlarge", 4), ("g6.48xlarge", 8)]),
        "nvidia-a10g": _shapes([("g5.xlarge", 1), ("g5.2xlarge", 1), ("g5.4xlarge", 1), ("g5.8xlarge", 1),
                                ("g5.16xlarge", 1), ("g5.12xlarge", 4), ("g5.24xlarge", 4), ("g5.48xlarge", 8)]),
        "nvidia-a100-40gb": _shapes([("p4d.24xlarge", 8)]),
        "nvidia-a100-80gb": _shapes([("p4de.24xlarge", 8)]),
        "nvidia-l40s": _shapes([("g6e.xlarge", 1), ("g6e.2xlarge", 1), ("g6e.4xlarge", 1), ("g6e.8xlarge", 1),
                                ("g6e.16xlarge", 1), ("g6e.12xlarge", 4), ("g6e.24xlarge", 4), ("g6e.48xlarge", 8)]),
        "nvidia-h100-80gb": _shapes([("p5.4xlarge", 1), ("p5.48xlarge", 8)]),
        "nvidia-h200": _shapes([("p5e.48xlarge", 8), ("p5en.48xlarge", 8)]),
    },
    "gcp": {
        # T4s attach to N1 machines; 1, 2 or 4 per VM.
        "nvidia-t4": _shapes([("n1-standard-8", 1), ("n1-standard-16", 2), ("n1-standard-32", 4)], "nvidia-tesla-t4"),
        "nvidia-l4": _shapes([("g2-standard-4", 1), ("g2-standard-8", 1), ("g2-standard-12", 1), ("g2-standard-16", 1),
                              ("g2-standard-32", 1), ("g2-standard-24", 2), ("g2-standard-48", 4),
                              ("g2-standard-96", 8)], "nvidia-l4"),
        "nvidia-a100-40gb": _shapes([("a2-highgpu-1g", 1), ("a2-highgpu-2g", 2), ("a2-highgpu-4g", 4),
                                     ("a2-highgpu-8g", 8), ("a2-megagpu-16g", 16)], "nvidia-tesla-a100"),
        "nvidia-a100-80gb": _shapes([("a2-ultragpu-1g", 1), ("a2-ultragpu-2g", 2), ("a2-ultragpu-4g", 4),
                                     ("a2-ultragpu-8g", 8)], "nvidia-a100-80gb"),
        "nvidia-h100-80gb": _shapes([("a3-highgpu-1g", 1), ("a3-highgpu-2g", 2), ("a3-highgpu-4g", 4),
                                     ("a3-highgpu-8g", 8)], "nvidia-h100-80gb")
        + _shapes([("a3-megagpu-8g", 8)], "nvidia-h100-mega-80gb"),
        "nvidia-h200": _shapes([("a3-ultragpu-8g", 8)], "nvidia-h200-141gb"),
    },
    "azure": {
        "nvidia-t4": _shapes([("Standard_NC4as_T4_v3", 1), ("Standard_NC8as_T4_v3", 1), ("Standard_NC16as_T4_v3", 1),
                              ("Standard_NC64as_T4_v3", 4)]),
        "nvidia-a100-40gb": _shapes([("Standard_ND96asr_v4", 8)]),
        "nvidia-a100-80gb": _shapes([("Standard_NC24ads_A100_v4", 1), ("Standard_NC48ads_A100_v4", 2),
                                     ("Standard_NC96ads_A100_v4", 4), ("Standard_ND96amsr_A100_v4", 8)]),
        # The NC H100 v5 sizes carry H100 NVL (94 GB, PCIe), not the 80 GB SXM part of the ND sizes.
        "nvidia-h100-nvl": _shapes([("Standard_NC40ads_H100_v5", 1), ("Standard_NC80adis_H100_v5", 2)]),
        "nvidia-h100-80gb": _shapes([("Standard_ND96isr_H100_v5", 8)]),
        "nvidia-h200": _shapes([("Standard_ND96isr_H200_v5", 8)]),
    },
}

GPU_TYPES = ("nvidia-t4", "nvidia-l4", "nvidia-a10g", "nvidia-l40s", "nvidia-a100-40gb", "nvidia-a100-80gb",
             "nvidia-h100-80gb", "nvidia-h100-nvl", "nvidia-h200")


def shapes_for(cloud, gpu_type, count, field="gpu"):
    """Shapes on `cloud` with exactly `count` GPUs of `gpu_type`, in preference order.

    Raises SpecError naming `field` (e.g. node_pools[0].gpu) when the GPU is unknown, not offered on
    that cloud, or not offered in that count, with the choices that do exist.
    """
    if gpu_type not in GPU_TYPES:
        raise SpecError(field + ".type", "unknown GPU type %r" % (gpu_type,),
                        hint="use one of %s, or name instance_types directly" % ", ".join(GPU_TYPES))
    offered = CATALOG[cloud].get(gpu_type)
    if not offered:
        elsewhere = sorted(c for c in CATALOG if gpu_type in CATALOG[c])
        raise SpecError(field + ".type", "%s is not offered on %s" % (gpu_type, cloud),
                        hint="choose one of %s there (or use %s)"
                             % (", ".join(sorted(CATALOG[cloud])), " or ".join(elsewhere)))
    matching = [s for s in offered if s.gpus == count]
    if not matching:
        counts = sorted(set(s.gpus for s in offered))
        raise SpecError(field + ".count", "%s on %s comes with %s GPU(s) per node, not %d"
                        % (gpu_type, cloud, ", ".join(str(c) for c in counts), count),
                        hint="set gpu.count to one of %s" % ", ".join(str(c) for c in counts))
    return matching


def shape(cloud, instance_type):
    """The catalog entry for a named instance type, and its GPU name; (None, None) when not a GPU shape."""
    for gpu_type, shapes in CATALOG[cloud].items():
        for s in shapes:
            if s.instance_type == instance_type:
                return s, gpu_type
    return None, None


def instance_types_for(cloud, pool, index):
    """The instance types a pool should use: the ones it names, else the catalog's for its GPU.

    When both are given, every named type must carry the requested GPU and count.
    """
    field = "node_pools[%d]" % index
    if pool.instance_types:
        if pool.gpu:
            for i, name in enumerate(pool.instance_types):
                found, gpu_type = shape(cloud, name)
                if found is None or gpu_type != pool.gpu.type or found.gpus != pool.gpu.count:
                    raise SpecError("%s.instance_types[%d]" % (field, i),
                                    "%s does not carry %d x %s" % (name, pool.gpu.count, pool.gpu.type),
                                    hint="drop instance_types to let the GPU catalog choose, or name a matching type")
        return list(pool.instance_types)
    if pool.gpu:
        return [s.instance_type for s in shapes_for(cloud, pool.gpu.type, pool.gpu.count, field + ".gpu")]
    return []
