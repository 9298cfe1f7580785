"""Backends for the provider tests: each starts once per session and stays on loopback."""
import pytest

from aws_backend import AwsBackend


@pytest.fixture(scope="session")
def aws_backend():
    backend = AwsBackend()
    yield backend
    backend.close()
