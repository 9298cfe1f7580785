"""Fixtures shared by the provider tests in this directory.

The Azure ones (test_azure.py, test_azure_foundation_nodes.py) use `server`, a loopback HTTPS server playing
recorded ARM exchanges (azure_fixture_server.py) that fails the test at teardown on any request it did not
expect, any exchange left unplayed, or any body that does not fit the SDK's model; and `clean_azure_env`
(through pytestmark), so a developer's own AZURE_* variables never pick the credential a test expects.
`price_list` puts the Price List Query API (aws_price_list.py) in front of moto for one AWS test.
"""
import pytest

from aws_price_list import TARGET, PriceList
from azure_fixture_server import FixtureServer

AZURE_ENV = ("AZURE_SUBSCRIPTION_ID", "AZURE_CLIENT_ID", "AZURE_SECRET", "AZURE_CLIENT_SECRET", "AZURE_TENANT",
             "AZURE_TENANT_ID")


@pytest.fixture
def clean_azure_env(monkeypatch):
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path):
    srv = FixtureServer(str(tmp_path))
    yield srv
    try:
        srv.verify()
    finally:
        srv.close()


@pytest.fixture
def price_list(aws_backend):
    """GetProducts answered by the AWS test proxy; fails the test on any request botocore's model refuses."""
    answer = PriceList()
    aws_backend.proxy.json_answers[TARGET] = answer
    aws_backend.proxy.quotas["L-DB2E81BA"] = 64.0
    aws_backend.proxy.quotas["L-3819A6DF"] = 8.0
    yield answer
    del aws_backend.proxy.json_answers[TARGET]
    assert answer.invalid == [], answer.invalid
