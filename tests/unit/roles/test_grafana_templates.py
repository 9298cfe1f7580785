"""Every file roles/grafana writes, rendered with Ansible's own templating from the role's defaults and vars
plus a cloud inventory's values, parses and has the shape Grafana (and apt/dnf) document.

Grafana itself cannot be installed here (its package repository is not reachable), so this is how the
role's output is checked; docs/observability.md says so.
"""
import configparser
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = pathlib.Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "grafana"
INVENTORY_VARS = ROOT / "inventories" / "aws" / "prod" / "group_vars" / "all" / "grafana.yml"
ADMIN_PASSWORD = "sample-admin-password-0123"
ES_PASSWORD = "sample-es-password-4567"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBsample\n-----END CERTIFICATE-----\n"


def variables(os_family="Debian", **overrides):
    loader = DataLoader()
    values = {}
    for path in (ROLE / "defaults" / "main.yml", ROLE / "vars" / "main.yml",
                 ROLE / "vars" / ("%s.yml" % os_family), INVENTORY_VARS):
        values.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
    values.update({
        "inventory_hostname": "llmops-prod-monitoring-1",
        "ansible_managed": "Ansible managed",
        "ansible_facts": {"os_family": os_family},
        "ansible_check_mode": False,
        "vault_grafana_admin_password": ADMIN_PASSWORD,
        "prometheus_scrape_interval": "15s",
    })
    values.update(overrides)
    return loader, values


def render(name, os_family="Debian", **overrides):
    loader, values = variables(os_family, **overrides)
    templar = Templar(loader=loader, variables=values)
    return templar.template(trust_as_template((ROLE / "templates" / name).read_text()))


def value(expression, os_family="Debian", **overrides):
    loader, values = variables(os_family, **overrides)
    return Templar(loader=loader, variables=values).template(trust_as_template(expression))


VARIANTS = {
    "defaults": {},
    "tls-elasticsearch": {
        "grafana_tls_enabled": True, "grafana_http_addr": "0.0.0.0",
        "grafana_elasticsearch_enabled": True, "grafana_elasticsearch_username": "grafana",
        "grafana_elasticsearch_password": ES_PASSWORD, "grafana_elasticsearch_ca_cert": CA_PEM,
        "grafana_ini_extra": {"dataproxy": {"timeout": 60, "logging": False}, "security": {"login_remember_days": 7}},
        "grafana_datasources_extra": [{"name": "Loki", "type": "loki", "access": "proxy",
                                       "url": "http://127.0.0.1:3100", "uid": "loki"}],
    },
}


def parse_ini(text):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.read_string(text)
    return parser


def test_the_inventory_takes_the_password_from_a_vault_variable():
    raw = yaml.safe_load(INVENTORY_VARS.read_text())
    assert raw["grafana_admin_password"] == "{{ vault_grafana_admin_password }}"
    assert raw["llmops_grafana_enabled"] is True
    for path in ROOT.glob("inventories/*/*/group_vars/all/grafana.yml"):
        assert yaml.safe_load(path.read_text())["grafana_admin_password"].startswith("{{ vault_"), path


@pytest.mark.parametrize("variant", VARIANTS)
def test_grafana_ini(variant):
    text = render("grafana.ini.j2", **VARIANTS[variant])
    ini = parse_ini(text)
    assert ADMIN_PASSWORD not in text and ES_PASSWORD not in text
    security = ini["security"]
    assert security["admin_user"] == "admin"
    assert security["admin_password"] == "$__file{/etc/grafana/secrets/admin_password}"
    assert security["secret_key"] == "$__file{/etc/grafana/secrets/secret_key}"
    assert security["cookie_secure"] == "true"
    assert security["disable_gravatar"] == "true"
    assert ini["auth.anonymous"]["enabled"] == "false"
    assert all(ini["analytics"][k] == "false" for k in ini["analytics"])
    assert ini["users"]["allow_sign_up"] == "false"
    assert ini["paths"]["provisioning"] == "/etc/grafana/provisioning"
    server = ini["server"]
    if VARIANTS[variant].get("grafana_tls_enabled"):
        assert server["protocol"] == "https"
        assert server["cert_file"] == "/etc/grafana/tls/grafana.crt"
        assert server["cert_key"] == "/etc/grafana/tls/grafana.key"
        assert server["min_tls_version"] == "TLS1.2"
        assert security["strict_transport_security"] == "true"
        assert ini["dataproxy"]["timeout"] == "60" and ini["dataproxy"]["logging"] == "false"
        assert security["login_remember_days"] == "7"
    else:
        assert server["protocol"] == "http" and server["http_addr"] == "127.0.0.1"
        assert "cert_file" not in server


@pytest.mark.parametrize("variant", VARIANTS)
def test_datasources_provisioning(variant):
    text = render("datasources.yaml.j2", **VARIANTS[variant])
    assert ES_PASSWORD not in text, "the Elasticsearch password must not be in the provisioning file"
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == 1
    sources = doc["datasources"]
    assert isinstance(sources, list) and sources
    for source in sources:
        assert {"name", "type", "access", "url"} <= set(source), source
        assert source["access"] in ("proxy", "direct")
        assert isinstance(source.get("jsonData", {}), dict) and isinstance(source.get("secureJsonData", {}), dict)
    assert len({s["name"] for s in sources}) == len(sources)
    uids = [s["uid"] for s in sources if "uid" in s]
    assert len(set(uids)) == len(uids)
    assert [s["name"] for s in sources if s.get("isDefault")] == ["Prometheus"]
    prometheus = sources[0]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://127.0.0.1:9090"
    assert prometheus["jsonData"]["timeInterval"] == "15s"
    elasticsearch = [s for s in sources if s["type"] == "elasticsearch"]
    if VARIANTS[variant].get("grafana_elasticsearch_enabled"):
        (es,) = elasticsearch
        assert es["basicAuth"] is True and es["basicAuthUser"] == "grafana"
        assert es["secureJsonData"]["basicAuthPassword"] == "$LLMOPS_GRAFANA_ES_PASSWORD"
        assert es["secureJsonData"]["tlsCACert"] == CA_PEM
        assert es["jsonData"]["timeField"] == "@timestamp" and es["jsonData"]["tlsAuthWithCACert"] is True
        assert [s["uid"] for s in sources][-1] == "loki"
    else:
        assert not elasticsearch


def test_dashboard_provider():
    doc = yaml.safe_load(render("dashboards.yaml.j2"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["name"] == "llmops"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/llmops"
    assert provider["folder"] == "LLMOps" and isinstance(provider["updateIntervalSeconds"], int)
    assert provider["allowUiUpdates"] is False


def test_apt_source_and_pin():
    fields = dict(line.split(": ", 1) for line in render("grafana.sources.j2").splitlines()
                  if line and not line.startswith("#"))
    assert fields == {"Types": "deb", "URIs": "https://apt.grafana.com", "Suites": "stable", "Components": "main",
                      "Signed-By": "/etc/apt/keyrings/grafana.asc"}
    stanzas = [dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith("#"))
               for block in render("grafana.pref.j2").split("\n\n")]
    assert {"Package": "grafana", "Pin": "version 12.3.1", "Pin-Priority": "1001"} in stanzas
    assert value("{{ __grafana_package_spec }}") == "grafana=12.3.1"
    assert value("{{ __grafana_repo_key_url }}") == "https://apt.grafana.com/gpg.key"


def test_dnf_repository():
    repo = parse_ini(render("grafana.repo.j2", os_family="RedHat"))["grafana"]
    assert repo["baseurl"] == "https://rpm.grafana.com"
    assert repo["gpgcheck"] == "1" and repo["repo_gpgcheck"] == "1"
    assert repo["gpgkey"] == "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-grafana"
    assert value("{{ __grafana_package_spec }}", os_family="RedHat") == "grafana-12.3.1"
    assert value("{{ __grafana_repo_key_url }}", os_family="RedHat") == "https://rpm.grafana.com/gpg.key"


def test_unit_dropin():
    ini = parse_ini(render("grafana-server.override.conf.j2"))
    assert ini["Service"]["EnvironmentFile"] == "/etc/grafana/secrets/provisioning.env"


def make_key_listing(gpg, env, home):
    """A fresh key with a subkey, exported and listed the way the role lists Grafana's key."""
    quiet = ["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([gpg, *quiet, "--quick-gen-key", "llmops test <test@example.invalid>",
                    "ed25519", "sign", "1d"], env=env, check=True, capture_output=True, timeout=60)
    listed = subprocess.run([gpg, "--batch", "--with-colons", "--list-keys"], env=env, check=True,
                            capture_output=True, text=True).stdout
    primary = re.search(r"^fpr:{9}([0-9A-F]{40}):", listed, re.M).group(1)
    subprocess.run([gpg, *quiet, "--quick-add-key", primary, "cv25519", "encr", "1d"],
                   env=env, check=True, capture_output=True, timeout=60)
    key = home / "key.asc"
    key.write_text(subprocess.run([gpg, "--batch", "--armor", "--export"], env=env, check=True,
                                  capture_output=True, text=True).stdout)
    listing = subprocess.run([gpg, "--batch", "--with-colons", "--show-keys", "--with-fingerprint", str(key)],
                             env=env, check=True, capture_output=True, text=True).stdout
    return listing


def test_key_fingerprint_check_reads_real_gpg_output(tmp_path):
    """The role's fingerprint expression, run by Ansible on real `gpg --show-keys` output of a fresh key."""
    gpg = shutil.which("gpg")
    if gpg is None:
        pytest.fail("gpg is not installed: apt-get install gpg")
    env = dict(os.environ, GNUPGHOME=str(tmp_path))
    os.chmod(tmp_path, 0o700)
    try:
        listing = make_key_listing(gpg, env, tmp_path)
    finally:  # gpg started an agent for this home directory; stop it
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False, capture_output=True, timeout=30)
    fingerprints = re.findall(r"^fpr:{9}([0-9A-F]{40}):", listing, re.M)
    assert len(fingerprints) == 2, listing  # primary key and subkey

    tasks = yaml.safe_load((ROLE / "tasks" / "install.yml").read_text())
    check = next(t for block in tasks for t in block.get("block", []) if t["name"].startswith("Refuse a key"))
    expression = check["vars"]["__grafana_key_fingerprints"]
    found = value(expression, __grafana_key_listing={"stdout": listing})
    assert list(found) == [fingerprints[0]], "only the primary key's fingerprint counts"


def test_role_names_the_missing_admin_password(tmp_path):
    """Without grafana_admin_password the role stops at once and says which variable to set."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "roles": [{"role": str(ROLE)}]}]))
    result = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "--check", str(playbook)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Check that the admin password is set" in output and "grafana_admin_password is not set" in output, output
