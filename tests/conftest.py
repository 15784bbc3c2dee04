"""Shared fixtures: a real emulator over loopback HTTP and an authenticated client for it."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from awskit import Stage, restored_logging
from paywire.emulator import AppCredentials, EmulatorConfig
from paywire.settings import DEMO_CATALOG
from paywire.testing import EmulatorServer, MotoServer, run_moto
from testkit import CLIENT_ID, CLIENT_SECRET, get_token

# paywire's pytest plugin (the `paywire_*` fixtures) is the `pytest11` entry point of the
# installed distribution; an editable install made before the entry point existed lacks it, so
# the suite loads the plugin itself then (never twice: pytest refuses a plugin registered twice).
if not any(ep.value == "paywire.testing.plugin"
           for ep in importlib.metadata.entry_points(group="pytest11")):
    pytest_plugins = ["paywire.testing.plugin"]


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """The emulator's configuration; override in a module to change it."""
    return EmulatorConfig(apps=[AppCredentials(CLIENT_ID, CLIENT_SECRET)], record_responses=True,
                          webhook_time_scale=0.001, seed=1234)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[EmulatorServer]:
    """A fresh emulator served by uvicorn on a free loopback port."""
    server = EmulatorServer(emulator_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def paypal(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An httpx client for the emulator, already holding a bearer token."""
    token = get_token(emulator.url)
    with httpx.Client(base_url=emulator.url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server process (AWS over loopback HTTP) for the session; tests isolate by
    resource names (a fresh table / queue name each), not by resetting it."""
    with run_moto() as server:
        yield server


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 clients built from the environment (as in Lambda) talk to the moto server (the
    AWS suites use it on every test: `pytestmark = pytest.mark.usefixtures(...)`)."""
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def entry_point_logging() -> Iterator[None]:
    """An entry point run in this process (a CLI command through CliRunner) installs paywire's
    log handler and level for the process (`paywire.logs.configure`), as it should in its own;
    here the next test gets the loggers back as they were (Powertools' handler stays)."""
    names = ("paywire", "uvicorn", "uvicorn.error")
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate)
             for name in names}
    yield
    for name, (level, propagate) in saved.items():
        logger = logging.getLogger(name)
        ours = [h for h in logger.handlers if (h.name or "").startswith("paywire-")]
        for handler in ours:
            logger.removeHandler(handler)
        if ours:
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.fixture(scope="module")
def powertools_logging() -> Iterator[None]:
    """The Lambda handlers configure Powertools' logger; other suites get logging back as it
    was once a module that runs them is done."""
    with restored_logging():
        yield


@pytest.fixture(scope="module")
def stage_clients(moto_server: MotoServer) -> Iterator[tuple[Any, Any]]:
    """Secrets Manager and SSM clients for the moto server (made once: they are slow to make)."""
    sm, ssm = moto_server.client("secretsmanager"), moto_server.client("ssm")
    yield sm, ssm
    sm.close()
    ssm.close()


@pytest.fixture
def stage(stage_clients: tuple[Any, Any], moto_server: MotoServer,
          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Stage:
    """A fresh stage (a unique name), the process environment pointed at moto and at it."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in [n for n in os.environ if n.startswith("PAYWIRE_")]:
        monkeypatch.delenv(name)
    for name, value in moto_server.env.items():
        monkeypatch.setenv(name, value)
    s = Stage("t" + uuid.uuid4().hex[:12], *stage_clients)
    monkeypatch.setenv("PAYWIRE_STAGE", s.name)
    monkeypatch.setenv("PAYWIRE_CATALOG_PATH", str(DEMO_CATALOG))
    return s


# --- CI rules, Hypothesis profiles and PayPal schema conformance (see DEVELOPERS.md) ----------
# Imports sit here, not at the top, so this block stays one appended unit.

import weakref  # noqa: E402
from collections.abc import Generator  # noqa: E402

from hypothesis import settings as hypothesis_settings  # noqa: E402

import paypal_schema  # noqa: E402
from paywire.emulator.paypal.state import EmulatorState  # noqa: E402

IN_CI = os.environ.get("CI") == "true"

hypothesis_settings.register_profile("ci", max_examples=50, deadline=None, derandomize=True)
hypothesis_settings.register_profile("dev")
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if IN_CI else "dev"))

# Tests skipped in this session: (node id, reason). Under CI any of them fails the run.
_SKIPPED: list[tuple[str, str]] = []
# How many request-log entries of each emulator were already checked against the specs.
_CHECKED: weakref.WeakKeyDictionary[EmulatorState, int] = weakref.WeakKeyDictionary()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that exempts a test from the automatic schema check."""
    config.addinivalue_line(
        "markers", "schema_exempt(reason): do not check this test's emulator responses "
        "against PayPal's OpenAPI files (e.g. a fault rule returns a deliberately bad body)")


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember every skipped test (xfail is not a skip)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append((report.nodeid, _skip_reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Remember every module skipped at collection (`pytest.importorskip`, module-level skip)."""
    if report.skipped:
        _SKIPPED.append((report.nodeid, _skip_reason(report)))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true, a run that skipped anything fails: nothing may skip for lack of a service."""
    if IN_CI and _SKIPPED and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say why a CI run failed on skips, listing each one."""
    if IN_CI and _SKIPPED:
        terminalreporter.write_sep("=", f"CI=true: {len(_SKIPPED)} skipped, which fails the run",
                                   red=True)
        for nodeid, reason in _SKIPPED:
            terminalreporter.write_line(f"SKIPPED {nodeid}: {reason}")


def _emulator_states(item: pytest.Item) -> list[EmulatorState]:
    funcargs = getattr(item, "funcargs", {})
    return [v.emu for v in funcargs.values() if isinstance(v, EmulatorServer)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After a passing test, check every response its emulators recorded against PayPal's specs."""
    result = yield  # a failing test raises here and keeps its own failure
    states = _emulator_states(item)
    if not states or item.get_closest_marker("schema_exempt"):
        return result
    missing = paypal_schema.missing_specs_reason()
    if missing:
        if IN_CI:
            pytest.fail(f"PayPal schema conformance cannot run under CI=true: {missing}",
                        pytrace=False)
        return result
    specs = paypal_schema.load_specs(str(paypal_schema.specs_dir()))
    violations: list[paypal_schema.Violation] = []
    for emu in states:
        start = _CHECKED.get(emu, 0)
        log = emu.request_log
        if start > len(log):  # the state was reset
            start = 0
        violations.extend(paypal_schema.check_request_log(specs, log[start:]))
        _CHECKED[emu] = len(log)
    if violations:
        lines = "\n".join(f"  - {v}" for v in violations)
        pytest.fail(f"emulator responses break PayPal's OpenAPI schemas "
                    f"({len(violations)} violations):\n{lines}", pytrace=False)
    return result
