"""The GPU catalog: what each cloud's shapes carry, and errors that name the field."""
import pytest

from ansible_collections.llmops.platform.plugins.module_utils import gpu_catalog
from ansible_collections.llmops.platform.plugins.module_utils.errors import SpecError


def test_azure_nc_h100_v5_sizes_are_h100_nvl_not_80gb():
    for size in ("Standard_NC40ads_H100_v5", "Standard_NC80adis_H100_v5"):
        assert gpu_catalog.shape("azure", size)[1] == "nvidia-h100-nvl"
    assert [s.instance_type for s in gpu_catalog.shapes_for("azure", "nvidia-h100-80gb", 8)] == ["Standard_ND96isr_H100_v5"]
    with pytest.raises(SpecError) as err:
        gpu_catalog.shapes_for("azure", "nvidia-h100-80gb", 1, field="node_pools[1].gpu")
    assert str(err.value).startswith("node_pools[1].gpu.count:")


@pytest.mark.parametrize("cloud, gpu, count, first", [
    ("aws", "nvidia-l40s", 1, "g6e.xlarge"),
    ("aws", "nvidia-l40s", 4, "g6e.12xlarge"),
    ("aws", "nvidia-h200", 8, "p5e.48xlarge"),
    ("gcp", "nvidia-h200", 8, "a3-ultragpu-8g"),
    ("azure", "nvidia-h200", 8, "Standard_ND96isr_H200_v5"),
    ("azure", "nvidia-h100-nvl", 2, "Standard_NC80adis_H100_v5"),
])
def test_new_gpus_are_offered_where_the_clouds_sell_them(cloud, gpu, count, first):
    assert gpu_catalog.shapes_for(cloud, gpu, count)[0].instance_type == first


def test_gcp_shapes_name_their_accelerator_type():
    assert gpu_catalog.shape("gcp", "a3-ultragpu-8g")[0].accelerator == "nvidia-h200-141gb"
    assert gpu_catalog.shape("gcp", "a3-megagpu-8g")[0].accelerator == "nvidia-h100-mega-80gb"


@pytest.mark.parametrize("cloud, gpu", [("gcp", "nvidia-l40s"), ("azure", "nvidia-l40s"), ("aws", "nvidia-h100-nvl")])
def test_not_offered_names_the_field_and_where_it_is(cloud, gpu):
    with pytest.raises(SpecError) as err:
        gpu_catalog.shapes_for(cloud, gpu, 1, field="node_pools[0].gpu")
    assert str(err.value).startswith("node_pools[0].gpu.type: %s is not offered on %s" % (gpu, cloud))


def test_every_catalog_gpu_is_a_known_type_and_every_shape_is_unique_per_cloud():
    for cloud, gpus in gpu_catalog.CATALOG.items():
        assert set(gpus) <= set(gpu_catalog.GPU_TYPES)
        names = [s.instance_type for shapes in gpus.values() for s in shapes]
        assert len(names) == len(set(names)), cloud
