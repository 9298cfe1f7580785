"""node_hardening defaults keep Kubernetes networking and the NVIDIA stack working.

The best-known hardening collection turns IP forwarding off by default, which breaks every Kubernetes
node; a module blacklist that caught nvidia* would take the GPUs away. These defaults are the contract.
"""
import pathlib
import re

import yaml

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "node_hardening"


def load(path):
    with open(ROLE / path) as handle:
        return yaml.safe_load(handle)


DEFAULTS = load("defaults/main.yml")
INTERNAL = load("vars/main.yml")


def test_kubernetes_profile_keeps_forwarding_and_bridge_netfilter():
    profile = DEFAULTS["node_hardening_sysctl_kubernetes_node"]
    assert profile["net.ipv4.ip_forward"] == 1
    assert profile["net.bridge.bridge-nf-call-iptables"] == 1
    assert profile["net.bridge.bridge-nf-call-ip6tables"] == 1
    assert "br_netfilter" in DEFAULTS["node_hardening_kubernetes_modules"]
    # the common set must not switch forwarding back off underneath the profile
    assert not any("forward" in key for key in DEFAULTS["node_hardening_sysctl"])


def test_standalone_profile_turns_forwarding_off():
    assert DEFAULTS["node_hardening_sysctl_standalone"]["net.ipv4.ip_forward"] == 0


def test_default_profile_is_a_kubernetes_node():
    assert DEFAULTS["node_hardening_profile"] == "kubernetes_node"


def test_blacklist_never_names_gpu_or_kubernetes_modules():
    blacklist = DEFAULTS["node_hardening_modules_blacklist"]
    for module in blacklist:
        assert not module.startswith("nvidia"), module
        assert module not in ("overlay", "br_netfilter", "vxlan", "ip_tables"), module
    for wanted in ("cramfs", "freevxfs", "jffs2", "hfs", "hfsplus", "udf", "dccp", "sctp", "rds", "tipc"):
        assert wanted in blacklist


def test_role_guard_catches_nvidia_modules():
    # tasks/main.yml fails the run when the blacklist matches one of these patterns
    pattern = re.compile("|".join(INTERNAL["__node_hardening_modules_protected"]))
    for module in ("nvidia", "nvidia_uvm", "nvidia_drm", "nvidia_modeset", "nvidia_peermem",
                   "overlay", "br_netfilter"):
        assert pattern.search(module), module
    for module in DEFAULTS["node_hardening_modules_blacklist"]:
        assert not pattern.search(module), module


def test_gpu_group_opens_kubelet_node_exporter_and_dcgm():
    ports = {rule["port"] for rule in DEFAULTS["node_hardening_firewall_group_ports"]["llmops_gpu_nodes"]}
    assert {10250, 9100, 9400} <= ports


def test_ssh_algorithms_are_modern_for_every_openssh_row():
    for row in INTERNAL["__node_hardening_ssh_crypto"]:
        assert not any("cbc" in c or "3des" in c for c in row["ciphers"])
        assert not any("sha1" in m or "md5" in m for m in row["macs"])
        assert not any("sha1" in k or "nistp" in k for k in row["kex"])
        assert not any(k.startswith(("ecdsa", "ssh-rsa", "ssh-dss")) for k in row["host_key_algorithms"])


def test_aide_records_a_strong_hash():
    # Debian's default group H includes md5 and sha1; the role narrows it to one strong hash.
    assert DEFAULTS["node_hardening_integrity_checksums"] in ("sha256", "sha512", "H")


def test_compilers_are_root_only_by_default():
    assert DEFAULTS["node_hardening_compilers_restricted"] is True
    assert {"as", "cc", "gcc"} <= set(DEFAULTS["node_hardening_compilers"])


def test_ctrl_alt_del_does_not_reboot_the_node():
    assert DEFAULTS["node_hardening_sysctl"]["kernel.ctrl-alt-del"] == 0
    assert DEFAULTS["node_hardening_ctrl_alt_del_masked"] is True


def test_debsums_check_is_scheduled():
    assert DEFAULTS["node_hardening_tools_debsums_check"] in ("daily", "weekly", "monthly")


def test_pam_umask_is_explicit_so_user_private_groups_keep_it():
    # With only login.defs' UMASK, pam_umask (PAM 1.7, Debian 13) applies USERGROUPS_ENAB and turns
    # 027 into 007 for users with a private group; the profile must name the umask and nousergroups.
    tasks = (ROLE / "tasks" / "pam_Debian.yml").read_text()
    assert "pam_umask.so umask={{ node_hardening_umask }} nousergroups" in tasks
