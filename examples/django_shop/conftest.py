"""The sample Django shop's tests: pytest-django with the project's own settings.

Django is configured here (`pytest_configure`) from `django_shop.settings`, on a database of
this run's own: SQLite files in a fresh directory, or, with `SHOP_TEST_DATABASE=postgresql`, a
fresh PostgreSQL database on 127.0.0.1:5432 (pytest-django creates `test_<name>` and drops it at
the end; `tests/test_postgresql.py` runs this suite that way). The project's directory goes on
`sys.path` as `manage.py` puts it, so its packages are `django_shop` and `shop`.

`site` serves the shop as production would: uvicorn running the project's ASGI application
(Django's handler, paywire's runtime started by the server's lifespan) on a loopback port,
beside paywire's PayPal and APS emulator (`shop.demo`), on pytest-django's test database.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def pytest_configure(config: pytest.Config) -> None:
    """Django's settings: the project's, on this run's own database."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import django
    from django.conf import settings

    if settings.configured:
        return
    os.environ["SHOP_DATA_DIR"] = tempfile.mkdtemp(prefix="django-shop-")
    if os.environ.get("SHOP_TEST_DATABASE") == "postgresql":
        os.environ["SHOP_POSTGRES_NAME"] = f"djshop_{secrets.token_hex(4)}"
    import django_shop.settings as project

    settings.configure(**{name: getattr(project, name) for name in dir(project)
                          if name.isupper()})
    django.setup()


@dataclass
class Site:
    """The shop, served, and the emulator beside it."""

    url: str
    emulator: Any  # paywire.testing.Emulated

    @property
    def paywire(self) -> str:
        """Where the project includes paywire's URLs."""
        return f"{self.url}/paywire"


@pytest.fixture(scope="session")
def site(django_db_setup: None, django_db_blocker: Any) -> Iterator[Site]:
    """The shop under uvicorn through Django's ASGI handler, paywire's runtime started by its
    lifespan, the emulator subscribed to its webhook URL; the database open to the server's
    threads for the session."""
    from django.conf import settings
    from shop import catalog, demo

    from paywire.contrib.django import runtime
    from paywire.contrib.django.asgi import get_asgi_application
    from paywire.testing import ServerThread, free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    emulated = demo.start_emulator(url)
    server = ServerThread(get_asgi_application(), port=port)
    with django_db_blocker.unblock():
        catalog.seed()
        catalog.export(Path(settings.PAYWIRE["CATALOG_PATH"]))
        try:
            server.start()
            yield Site(url, emulated)
        finally:
            server.stop()
            runtime.stop()  # before pytest-django drops the database paywire is connected to
            emulated.server.stop()


@pytest.fixture
def products(site: Site, transactional_db: None) -> None:
    """The catalog's rows (each test's transactional database starts empty)."""
    from shop import catalog

    catalog.seed()


@pytest.fixture(autouse=True)
def entry_point_logging() -> Iterator[None]:
    """A `manage.py paywire...` command installs paywire's log handler and level for the
    process, as it should in its own; the next test gets the loggers back as they were, level
    included (pytest-django runs these database tests before the rest of the suite, whose
    caplog tests need paywire's loggers untouched)."""
    import logging

    names = ("paywire", "uvicorn", "uvicorn.error")
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate)
             for name in names}
    yield
    for name, (level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if (h.name or "").startswith("paywire-")]:
            logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (never `playwright install`).

    Playwright's sync API keeps an event loop in this thread, which Django's ORM takes for an
    async context; the tests' ORM calls are synchronous, so Django is told so while it runs
    (Playwright's and Django's documented recipe)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; `make test` installs it",
                    pytrace=False)
    with pytest.MonkeyPatch.context() as env, sync_playwright() as pw:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and tab."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()
