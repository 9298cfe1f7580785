"""gpu_cluster and gpu_cluster_info run in-process against real podman (the local provider)."""
import subprocess

import pytest

from ansible_collections.llmops.platform.plugins.modules import gpu_cluster, gpu_cluster_info


def args(name, image, count=1, **extra):
    base = {"provider": "local", "name": name, "wait_timeout": 120,
            "node_pools": [{"name": "gpu", "count": count, "image": image, "gpu": {"type": "nvidia-l4"}}]}
    base.update(extra)
    return base


def containers(name):
    out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}", "--filter",
                          "label=llmops.cluster=%s" % name], capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


def test_check_mode_plans_without_creating(run_module, cluster_name, node_image):
    result = run_module(gpu_cluster.main, args(cluster_name, node_image, count=2), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["actions"] == ["create_cluster cluster/%s" % cluster_name, "create_node_pool node_pool/gpu"]
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["node_pools"]["gpu"]["count"] == 2
    assert containers(cluster_name) == []
    assert subprocess.run(["podman", "network", "exists", "%s-net" % cluster_name], check=False).returncode != 0


def test_create_is_idempotent_then_scales_and_deletes(run_module, cluster_name, node_image):
    first = run_module(gpu_cluster.main, args(cluster_name, node_image, count=1))
    assert first["changed"] is True, first
    assert [n["name"] for n in first["nodes"]] == ["%s-gpu-1" % cluster_name]
    assert first["nodes"][0]["connection"] == {"ansible_connection": "containers.podman.podman",
                                               "ansible_host": "%s-gpu-1" % cluster_name}
    assert first["cluster"]["node_pools"]["gpu"]["gpu"] == {"type": "nvidia-l4", "count": 1}

    second = run_module(gpu_cluster.main, args(cluster_name, node_image, count=1))
    assert second["changed"] is False and second["actions"] == []

    info = run_module(gpu_cluster_info.main, {"provider": "local", "name": cluster_name})
    assert info["exists"] is True and info["changed"] is False
    assert info["cluster"] == second["cluster"]

    check_scale = run_module(gpu_cluster.main, args(cluster_name, node_image, count=2), check_mode=True, diff=True)
    assert check_scale["changed"] is True
    assert check_scale["diff"]["before"]["node_pools"]["gpu"]["count"] == 1
    assert check_scale["diff"]["after"]["node_pools"]["gpu"]["count"] == 2
    assert containers(cluster_name) == ["%s-gpu-1" % cluster_name]

    scaled = run_module(gpu_cluster.main, args(cluster_name, node_image, count=2))
    assert scaled["changed"] is True
    assert containers(cluster_name) == ["%s-gpu-1" % cluster_name, "%s-gpu-2" % cluster_name]

    # A stopped node (e.g. after a host reboot) is started again, and that is a change.
    subprocess.run(["podman", "stop", "-t", "0", "%s-gpu-2" % cluster_name], check=True, capture_output=True)
    restarted = run_module(gpu_cluster.main, args(cluster_name, node_image, count=2))
    assert restarted["changed"] is True
    assert restarted["actions"] == ["update_node_pool node_pool/gpu (status: 'stopped' -> 'running')"]
    assert {n["status"] for n in restarted["nodes"]} == {"running"}

    changed_image = run_module(gpu_cluster.main, args(cluster_name, "localhost/llmops/debian:bookworm", count=2))
    assert changed_image["changed"] is False
    assert "cannot be changed in place" in changed_image["not_updatable"][0]
    assert any("cannot be changed in place" in str(w) for w in changed_image["warnings"]), changed_image

    gone = run_module(gpu_cluster.main, {"provider": "local", "name": cluster_name, "state": "absent"})
    assert gone["changed"] is True and gone["cluster"] == {} and gone["nodes"] == []
    assert containers(cluster_name) == []
    again = run_module(gpu_cluster.main, {"provider": "local", "name": cluster_name, "state": "absent"})
    assert again["changed"] is False

    info = run_module(gpu_cluster_info.main, {"provider": "local", "name": cluster_name})
    assert info["exists"] is False


@pytest.mark.parametrize("override, field", [
    ({"node_pools": [{"name": "gpu", "count": -1, "image": "x"}]}, "node_pools[0].count"),
    ({"node_pools": [{"name": "gpu", "count": 1}]}, "node_pools[0].image"),
    ({"node_pools": [{"name": "gpu", "count": 1, "image": "localhost/llmops/no-such-image:1"}]}, "node_pools[0].image"),
    ({"provider": "openstack"}, "provider"),
    ({"node_pools": [{"name": "gpu", "min_count": 3, "max_count": 2, "count": 2, "image": "x"}]},
     "node_pools[0].min_count"),
])
def test_bad_input_fails_clearly_and_changes_nothing(run_module, cluster_name, node_image, override, field):
    result = run_module(gpu_cluster.main, args(cluster_name, node_image, **override))
    assert result.failed
    assert field in result["msg"], result["msg"]
    assert containers(cluster_name) == []


def test_missing_image_error_says_how_to_build_it(run_module, cluster_name, node_image):
    result = run_module(gpu_cluster.main, args(cluster_name, "localhost/llmops/no-such-image:1"))
    assert "not in local podman storage" in result["msg"] and "build-lab-images.sh" in result["msg"]
