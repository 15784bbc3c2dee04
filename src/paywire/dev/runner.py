"""Serving a dev stack: `run` until SIGINT/SIGTERM (`paywire dev`, `--aws` through the Lambda
handlers), `running` on a background thread for a test's block.

The choice between the plain stack and the AWS one is made here, above both, so the two stack
modules never import each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from paywire import logs
from paywire.dev.stack import DevOptions, DevStack, DevStackError
from paywire.domain.errors import ConfigError


async def _serve_until_signalled(stack: DevStack, out: Callable[[str], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stack.stop)
    try:
        await stack.serve(lambda s: out("\n".join(s.banner())))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _make(options: DevOptions | None, aws: bool) -> DevStack:
    if aws:
        from paywire.dev.aws import AwsDevStack  # needs the AWS extra and moto

        return AwsDevStack(options)
    return DevStack(options)


def run(options: DevOptions, out: Callable[[str], None] = print, *, aws: bool = False) -> int:
    """Serve the dev stack (`aws`: through the Lambda handlers against moto) until
    SIGINT/SIGTERM; the process exit code."""
    try:
        stack = _make(options, aws)
        if not aws:  # the Lambda handlers log as in Lambda (Powertools' JSON on stdout)
            fmt = logs.setup(stack.settings, "text", uvicorn=stack.settings.log_format == "json")
            stack.uvicorn_logging = fmt == "text"
        asyncio.run(_serve_until_signalled(stack, out))
    except (DevStackError, ConfigError) as exc:
        print(f"paywire dev: {exc}", file=sys.stderr)
        return 1
    out("paywire dev: stopped.")
    return 0


@contextlib.contextmanager
def running(options: DevOptions | None = None) -> Iterator[DevStack]:
    """The dev stack on a background thread for the block (tests: pass port 0 for free ports).

    Not for `dev --aws`: its Lambda handlers set up logging and the environment for the whole
    process, as in Lambda, so it runs as a process of its own (`paywire dev --aws`)."""
    stack = DevStack(options or DevOptions(port=0, emulator_port=0, log_level="warning"))
    failure: list[Exception] = []

    def target() -> None:
        try:
            asyncio.run(stack.serve())
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=target, name="paywire-dev", daemon=True)
    thread.start()
    while not stack.ready.wait(0.05):
        if not thread.is_alive():
            raise DevStackError("the dev stack did not start") from (
                failure[0] if failure else None)
    try:
        yield stack
    finally:
        stack.stop()  # the servers poll their exit flags, so any thread may set them
        thread.join(timeout=30)
    if failure:
        raise failure[0]
