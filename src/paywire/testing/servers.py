"""Servers for tests: any ASGI app on a free loopback port, the emulator, a moto process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import uvicorn

from paywire.emulator import Emulator, EmulatorConfig, create_app
from paywire.emulator.paypal.state import EmulatorState
from paywire.serving import uvicorn_options


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count: int) -> tuple[int, ...]:
    """`count` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    Each is held until all are chosen: ports taken one at a time can come back equal, since the
    kernel may hand out a port again as soon as the socket that had it is closed.
    """
    with ExitStack() as held:
        ports = []
        for _ in range(count):
            s = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return tuple(ports)


LISTEN_BACKLOG = 2048  # uvicorn's own default; its server listens again with its setting


def listening_socket(host: str, port: int = 0) -> socket.socket:
    """A socket bound to `host`:`port` (0: a free port) and listening, for a uvicorn server to
    take over (`uvicorn.Server.run(sockets=...)`). Listening at once claims the port: with
    SO_REUSEADDR a socket merely bound leaves it open to a second bind (another server built
    meanwhile, another process) that would only fail when its server starts. OSError if the
    port cannot be had."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class ServerThread:
    """Any ASGI app served by uvicorn on a background thread (real HTTP over loopback)."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        # Without a port, one is claimed now (a listening socket the server takes over): a
        # port merely found free could be handed to the next server built before this starts.
        self._sock: socket.socket | None = None
        if not port:
            self._sock = listening_socket(host)
            port = int(self._sock.getsockname()[1])
        self.port = port
        # Parsed as paywire's servers parse (`paywire.serving`): what the tests see is what runs.
        self.config = uvicorn.Config(app, host=host, port=self.port, log_level="warning",
                                     lifespan="on", access_log=False, **uvicorn_options())
        self.server = uvicorn.Server(self.config)
        sockets = [self._sock] if self._sock else None
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": sockets},
                                       daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and wait until it accepts connections."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.should_exit = True
        if self.thread.ident is not None:  # started
            self.thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()


@contextmanager
def serving(app: Any, port: int | None = None, timeout: float = 30.0) -> Iterator[ServerThread]:
    """Serve `app` (lifespan included) on a loopback port (free, or `port`: known before, for a
    webhook subscribed ahead) for the duration of the block; `.url` is its base URL."""
    server = ServerThread(app, port=port)
    server.start(timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


class EmulatorServer(ServerThread):
    """The PayPal emulator over real HTTP; `emu` is its live state."""

    def __init__(self, config: EmulatorConfig | None = None, port: int | None = None) -> None:
        self.app: Emulator = create_app(config)
        super().__init__(self.app, port)

    @property
    def emu(self) -> EmulatorState:
        """The emulator's state (for assertions and direct control in tests)."""
        return self.app.emu


@contextmanager
def run_emulator(config: EmulatorConfig | None = None) -> Iterator[EmulatorServer]:
    """Serve a fresh emulator for the duration of the block."""
    server = EmulatorServer(config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# moto's server, made faithful where paywire's tests lean on DynamoDB's guarantees. moto runs
# each request in a thread of its own and does not apply a DynamoDB request atomically: a
# conditional write checks, then writes, so two concurrent ones can both pass, and a cancelled
# transaction restores a copy of the table taken before it, undoing writes made meanwhile. So
# DynamoDB requests run one at a time (other services stay concurrent: an SQS long poll must
# not block the rest). And moto copies the whole table once per action of a transaction (for
# that rollback), before writing anything: one copy serves them all.
MOTO_LAUNCHER = """
import copy, sys, threading, types
import moto.dynamodb.models as models
from moto.dynamodb.responses import DynamoHandler

lock = threading.Lock()
call_action = DynamoHandler.call_action

def one_at_a_time(self):
    with lock:
        return call_action(self)

DynamoHandler.call_action = one_at_a_time
transact = models.DynamoDBBackend.transact_write_items

def transact_write_items(self, transact_items):
    tables = {}

    def deepcopy(value, memo=None):
        if not isinstance(value, models.Table):
            return copy.deepcopy(value, memo)
        if id(value) not in tables:
            tables[id(value)] = copy.deepcopy(value, memo)
        return tables[id(value)]

    models.copy = types.SimpleNamespace(deepcopy=deepcopy)
    try:
        return transact(self, transact_items)
    finally:
        models.copy = copy

models.DynamoDBBackend.transact_write_items = transact_write_items
from moto.server import main
main(sys.argv[1:])
"""


class MotoServer:
    """A moto server *process* (`moto_server`) on a free loopback port: AWS over real HTTP.

    Never in-process patching: boto3 talks to `endpoint_url` exactly as it would to AWS. The
    server process itself runs `MOTO_LAUNCHER`, which closes two gaps between moto and DynamoDB
    (atomic conditional writes, one rollback copy per transaction). Dummy credentials and a
    region go in `env` for clients built from the environment.
    """

    REGION = "eu-west-1"

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path  # where its stdout/stderr go (None: discarded)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None

    @property
    def endpoint_url(self) -> str:
        """Where every AWS client points."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for boto3 clients (and Lambda handlers) talking to this server."""
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": self.REGION, "AWS_REGION": self.REGION,
                "AWS_ENDPOINT_URL": self.endpoint_url}

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this server (dummy credentials, its region)."""
        import boto3

        env = self.env
        return boto3.client(service, endpoint_url=self.endpoint_url,
                            region_name=env["AWS_DEFAULT_REGION"],
                            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it answers."""
        output: BinaryIO | int = subprocess.DEVNULL
        if self.log_path is not None:
            self._log_file = output = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", MOTO_LAUNCHER, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=output, stderr=subprocess.STDOUT if self.log_path else subprocess.DEVNULL,
            env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(  # noqa: S310
                        f"{self.endpoint_url}/moto-api/data.json", timeout=1):
                    return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server on {self.endpoint_url} did not start"
                                       ) from None
                time.sleep(0.1)

    def reset(self) -> None:
        """Forget every resource (moto's reset endpoint)."""
        request = urllib.request.Request(  # noqa: S310
            f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@contextmanager
def run_moto() -> Iterator[MotoServer]:
    """Serve a fresh moto server process for the duration of the block."""
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
