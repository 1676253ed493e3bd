"""Fixtures for the end-to-end suite.

One mock provider serves the whole session; one gateway per storage backend
(SQLite, PostgreSQL) serves every test that does not need its own. Tests that
need a gateway of their own (body limit, SIGKILL, built-in mock, second node)
get one from `spawn`, which stops it at the end of the test.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest

from e2e_support import (
    KEYGATE_BIN,
    SENSITIVE_PREFIXES,
    Gateway,
    MockProvider,
    Postgres,
    Secret,
    Spawner,
    new_provider_key,
)

BACKENDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    # The SDKs read OPENAI_API_KEY, OPENAI_BASE_URL, ANTHROPIC_* … from the
    # environment; a real credential in the developer's shell must never be
    # used or sent anywhere by this suite.
    for name in list(os.environ):
        if name.startswith(SENSITIVE_PREFIXES) and not name.startswith(("KEYGATE_BIN", "KEYGATE_E2E_")):
            del os.environ[name]
    if not (os.path.isfile(KEYGATE_BIN) and os.access(KEYGATE_BIN, os.X_OK)):
        raise pytest.UsageError(
            f"keygate binary not found at {KEYGATE_BIN}; run `cargo build --bin keygate` or set KEYGATE_BIN"
        )


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    """Throw-away databases, created on first use and dropped at the end."""
    pg = Postgres()
    yield pg
    pg.drop_all()


@pytest.fixture(scope="session")
def provider_keys() -> dict[str, Secret]:
    """Provider credentials for this run: random, never real."""
    return {
        "openai": new_provider_key("sk-test-"),
        "anthropic": new_provider_key("sk-ant-test-"),
    }


@pytest.fixture(scope="session")
def mock(logs_dir: Path) -> Iterator[MockProvider]:
    m = MockProvider(logs_dir)
    yield m
    m.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param




@pytest.fixture(scope="session")
def gateway(
    pg: Postgres,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    logs_dir: Path,
    mock: MockProvider,
    provider_keys: dict[str, Secret],
) -> Iterator[Gateway]:
    """The shared gateway for `backend`. On PostgreSQL it runs with an
    explicit KEYGATE_SERVER_SECRET, so a second node can join it."""
    sp = Spawner(tmp_path_factory, logs_dir, pg, mock, provider_keys)
    extra: dict[str, str] = {"KEYGATE_KEY_REFRESH_INTERVAL": "200ms"}
    if backend == "postgres":
        extra["KEYGATE_SERVER_SECRET"] = Secret(secrets.token_urlsafe(48))
    gw = sp.gateway(backend, extra_env=extra, name=f"shared-{backend}")
    yield gw
    sp.stop_all()


@pytest.fixture
def spawn(
    pg: Postgres,
    tmp_path_factory: pytest.TempPathFactory,
    logs_dir: Path,
    mock: MockProvider,
    provider_keys: dict[str, Secret],
) -> Iterator[Spawner]:
    """Gateways of a test's own; all stopped when the test ends."""
    sp = Spawner(tmp_path_factory, logs_dir, pg, mock, provider_keys)
    yield sp
    sp.stop_all()


@pytest.fixture
def key(gateway: Gateway) -> dict[str, Any]:
    """A fresh, unrestricted data key on the shared gateway."""
    return gateway.create_key()


@pytest.fixture
def oai(gateway: Gateway, key: dict[str, Any]):
    client = gateway.openai(key["key"])
    yield client
    client.close()


@pytest.fixture
def anth(gateway: Gateway, key: dict[str, Any]):
    client = gateway.anthropic(key["key"])
    yield client
    client.close()


@pytest.fixture
def clean_faults(mock: MockProvider) -> Iterator[MockProvider]:
    mock.clear_faults()
    yield mock
    mock.clear_faults()


@pytest.fixture(scope="session")
def oauth_gateway(
    pg: Postgres,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    logs_dir: Path,
    mock: MockProvider,
    provider_keys: dict[str, Secret],
) -> Iterator[Gateway]:
    """A gateway for the OAuth tests: its issuer (KEYGATE_OAUTH_ISSUER) is
    the URL it listens on, so the token endpoint a service-account key file
    names is the one the tests call."""
    from oauth_support import master_key, oauth_env

    sp = Spawner(tmp_path_factory, logs_dir, pg, mock, provider_keys)
    extra = oauth_env()
    extra["KEYGATE_MASTER_KEY"] = master_key()
    gw = sp.gateway(backend, extra_env=extra, name=f"oauth-{backend}")
    yield gw
    sp.stop_all()


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[Any]:
    """A local OpenID Provider (discovery + JWKS on a loopback thread)."""
    from oauth_support import OidcIssuer

    issuer = OidcIssuer()
    yield issuer
    issuer.stop()
