"""Lambda: cold import of the handler modules, and webhook latency through Mangum per store.

    .venv/bin/python bench/lambda_webhook.py [--size tiny|small|full] [--deliveries 300]
        [--imports 7] [--cold-runs 3] [--json PATH]

1. Cold import, in fresh interpreters (`--imports` runs of each, interleaved, medians): the
   HTTP handler module (`import paywire.aws.http`) and the SQS consumer's against `import boto3`
   alone, each net of an empty interpreter's start (`python -c pass`, measured in the same run).
2. Webhook handler latency: PayPal's real signed deliveries (the emulator's, recorded at a sink)
   fed one at a time — as one Lambda execution environment takes them — to
   `paywire.aws.http.HttpApi`'s handler as API Gateway HTTP API v2 events with base64-encoded
   bodies, through Mangum, FastAPI, local signature verification, inbox + transition + outbox in
   one unit of work; the same handler class on DynamoDB (a moto server process over loopback
   HTTP) and on SQLite (a file), same run, after a warm-up of each. Each store's deliveries are
   for orders created through its own handler (so every event finds its order).
3. Memory: one more delivery on DynamoDB, taken by a fresh interpreter (bench/lambda_cold.py)
   with the modules the lean Lambda package lacks refused: the handler's import and the first
   delivery timed apart (the first builds the settings, container and app: a cold start is
   both), its resident memory after the imports and its peak (`ru_maxrss`) after the webhook
   (`--cold-runs` of them, the largest).
   The template's MemorySize is chosen from that figure (deploy/aws/README.md).

Processes: the PayPal emulator and the delivery sink (children, from bench/webhook_ingest.py),
a moto server, and this one (both handlers). The goals (bench/goals.py: each handler module's
net cold import against boto3's) are printed last. Not part of `make test`; `make bench` runs
`--size small`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import benchkit
import goals
import httpx
from benchkit import sized, wait_up
from webhook_ingest import CLIENT_ID, CLIENT_SECRET, Delivery, spawn, subscribe

import paywire
from paywire.testing import MotoServer, ServerThread, free_ports

WARMUP = 30
SIZES = {"tiny": {"deliveries": 12, "imports": 1, "cold_runs": 1, "warmup": 6},
         "small": {"deliveries": 90, "imports": 3, "cold_runs": 1, "warmup": 15},
         "full": {"deliveries": 300, "imports": 7, "cold_runs": 3, "warmup": WARMUP}}
IMPORTS = {
    "empty interpreter (python -c pass)": "pass",
    "import boto3": "import boto3",
    "import paywire.aws.http (HTTP handler)": "import paywire.aws.http",
    "import paywire.aws.sqs_consumer": "import paywire.aws.sqs_consumer",
}


# --- 1. cold imports ---------------------------------------------------------------------------


def cold_imports(runs: int) -> dict[str, list[float]]:
    """Wall seconds of each statement in a fresh interpreter, `runs` times, interleaved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYWIRE_", "PYTHON"))}
    env["PYTHONPATH"] = str(Path(paywire.__file__).parents[1])  # the paywire this bench runs
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(runs):
        for name, statement in IMPORTS.items():
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], check=True, env=env)  # noqa: S603
            times[name].append(time.perf_counter() - started)
    return times


IMPORT_KEYS = {"import boto3": "boto3", "import paywire.aws.http (HTTP handler)": "http",
               "import paywire.aws.sqs_consumer": "sqs"}


def report_imports(times: dict[str, list[float]]) -> dict[str, float]:
    """Medians, net of the empty interpreter, and the ratio to boto3 alone; the net
    milliseconds under goals.py's keys (lambda.import.<module>.ms)."""
    base = statistics.median(times["empty interpreter (python -c pass)"])
    boto = statistics.median(times["import boto3"]) - base
    runs = len(next(iter(times.values())))
    print(f"cold import: median of {runs} fresh interpreters each, interleaved; net = minus the "
          f"empty interpreter ({1000 * base:.0f} ms); {os.cpu_count()} cores (CI has 2)")
    for name, samples in times.items():
        median = statistics.median(samples)
        line = f"  {name:42} {1000 * median:7.0f} ms"
        if name != "empty interpreter (python -c pass)":
            net = median - base
            line += f"   net {1000 * net:6.0f} ms   vs boto3 alone {net / boto:5.2f}x"
        print(line)
    return {f"lambda.import.{key}.ms": 1000 * (statistics.median(times[name]) - base)
            for name, key in IMPORT_KEYS.items()}


# --- 2. webhook latency through the handler ------------------------------------------------------


def recorded_deliveries(api: str, emulator: str, sink: str, orders: int,
                        seen: set[str]) -> list[Delivery]:
    """Orders created through `api`, approved and captured at the emulator; the deliveries of
    their events that reached `sink` (first attempts, in the order sent)."""
    with httpx.Client(base_url=emulator, timeout=30) as emu, httpx.Client(timeout=30) as pw:
        token = emu.post("/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
                         data={"grant_type": "client_credentials"}).json()["access_token"]
        ids: set[str] = set()
        for n in range(orders):
            created = pw.post(f"{api}/v1/checkout/orders",
                              json={"items": [{"sku": "mug", "quantity": 1}]})
            created.raise_for_status()
            paypal_id = created.json()["provider_order_id"]
            ids.add(paypal_id)
            emu.post(f"/_emulator/orders/{paypal_id}/approve",
                     json={"scenario": "approve"}).raise_for_status()
            emu.post(f"/v2/checkout/orders/{paypal_id}/capture", headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "PayPal-Request-Id": f"lambda-bench-{paypal_id}-{n}"}).raise_for_status()
        wanted: list[dict[str, Any]] = []
        for _ in range(1200):
            log = emu.get("/_emulator/deliveries").json()["deliveries"]
            wanted = [a for a in log if a["url"] == sink and a["status"] == 200
                      and a["attempt"] == 1 and a["transmission_id"] not in seen
                      and any(i.encode() in base64.b64decode(a["body_base64"]) for i in ids)]
            if len(wanted) >= 3 * orders:
                break
            time.sleep(0.05)
    seen.update(a["transmission_id"] for a in wanted)
    keep = ("paypal-", "content-type", "user-agent")
    return [Delivery(base64.b64decode(a["body_base64"]),
                     {k: v for k, v in a["headers"].items() if k.lower().startswith(keep)})
            for a in sorted(wanted, key=lambda a: a["started_at"])]


def invoke_all(handler: Callable[[dict[str, Any], Any], Any],
               deliveries: list[Delivery]) -> tuple[list[float], dict[str, int]]:
    """Each delivery as an API Gateway v2 event (base64 body), one at a time; latencies and
    the answers' status codes."""
    from paywire.aws.events import LocalContext, http_answer, http_event

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    context = LocalContext(function_name="paywire-http-bench")
    for d in deliveries:
        event = http_event("POST", "/webhooks/paypal", headers=list(d.headers.items()),
                           body=d.body, base64_body=True)
        started = time.perf_counter()
        answer = http_answer(handler(event, context))
        latencies.append(time.perf_counter() - started)
        statuses[str(answer.status)] = statuses.get(str(answer.status), 0) + 1
    return latencies, statuses


def percentile(samples: list[float], p: int) -> float:
    """Milliseconds at percentile `p`."""
    return 1000 * statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def cold_invocation(tmp: str, settings: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
    """bench/lambda_cold.py's figures for `delivery` taken by a fresh interpreter."""
    request = Path(tmp, "cold-request.json")
    request.write_text(json.dumps({"settings": settings, "delivery": {
        "body_base64": base64.b64encode(delivery.body).decode(), "headers": delivery.headers}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")}
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("lambda_cold.py")),  # noqa: S603
                           str(request)], capture_output=True, text=True, env=env, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run_webhooks(deliveries: int, cold_runs: int, cold: list[dict[str, Any]],
                 warmup: int = WARMUP) -> dict[str, tuple[list[float], dict[str, int]]]:
    """Start everything, record deliveries per store, measure each handler (and `cold_runs`
    cold invocations on DynamoDB, into `cold`), stop."""
    from paywire.aws.http import HttpApi
    from paywire.aws.local import ApiGateway
    from paywire.settings import Settings
    from paywire.store.dynamo import ensure_table

    orders = deliveries // 3 + warmup // 3 + cold_runs
    procs: list[subprocess.Popen[bytes]] = []
    moto = MotoServer()
    results: dict[str, tuple[list[float], dict[str, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="paywire-lambda-bench-") as tmp:
        try:
            ports = list(free_ports(2))
            emulator, sink_base = (f"http://127.0.0.1:{p}" for p in ports)
            procs.append(spawn("emulator", str(ports[0])))
            wait_up(f"{emulator}/_emulator/", procs[-1])
            procs.append(spawn("echo", str(ports[1])))
            wait_up(sink_base, procs[-1])
            sink = f"{sink_base}/webhooks/paypal"
            webhook_id = subscribe(emulator, sink)
            moto.start()
            os.environ.update(moto.env)
            asyncio.run(ensure_table("paywire-bench", endpoint_url=moto.endpoint_url,
                                     region=moto.REGION))
            stores = {"DynamoDB (moto server)": "dynamodb://paywire-bench",
                      "SQLite (file)": f"sqlite+aiosqlite:///{Path(tmp, 'paywire.db')}"}
            seen: set[str] = set()
            for name, url in stores.items():
                if url.startswith("sqlite"):
                    from paywire.store import migrate

                    migrate.upgrade(url)

                def settings(url: str = url) -> Settings:
                    return Settings.load(
                        paypal_env="emulator", paypal_base_url=emulator,
                        paypal_client_id=CLIENT_ID, paypal_client_secret=CLIENT_SECRET,
                        data_dir=Path(tmp), database_url=url, paypal_webhook_id=webhook_id,
                        startup_credentials_check=False)

                handler = HttpApi(settings_factory=settings)
                front = ServerThread(ApiGateway(handler))
                front.start()
                try:
                    recorded = recorded_deliveries(front.url, emulator, sink, orders, seen)
                finally:
                    front.stop()
                invoke_all(handler, recorded[:warmup])
                held = recorded[-cold_runs:] if url.startswith("dynamodb") else []
                results[name] = invoke_all(handler, recorded[warmup:len(recorded) - len(held)])
                for delivery in held:
                    cold.append(cold_invocation(tmp, {
                        "paypal_env": "emulator", "paypal_base_url": emulator,
                        "paypal_client_id": CLIENT_ID, "paypal_client_secret": CLIENT_SECRET,
                        "data_dir": tmp, "database_url": url, "paypal_webhook_id": webhook_id,
                        "startup_credentials_check": False}, delivery))
        finally:
            moto.stop()
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=15)
    return results


def report_webhooks(results: dict[str, tuple[list[float], dict[str, int]]]
                    ) -> dict[str, float]:
    """p50/p99 per store and the ratio DynamoDB / SQLite; the figures."""
    print("webhook handler (paywire.aws.http through Mangum, API Gateway v2 events, base64 "
          "bodies, one at a time, in this process; verification local, certificate cached)")
    print(f"  {'store':28} {'n':>5} {'p50 ms':>8} {'p99 ms':>8}   answers")
    for name, (latencies, statuses) in results.items():
        answers = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
        print(f"  {name:28} {len(latencies):5} {percentile(latencies, 50):8.2f} "
              f"{percentile(latencies, 99):8.2f}   {answers}")
    (dyn, _), (sql, _) = results.values()
    print(f"  ratio DynamoDB on moto / SQLite: p50 {percentile(dyn, 50) / percentile(sql, 50):.1f}x"
          f", p99 {percentile(dyn, 99) / percentile(sql, 99):.1f}x ({os.cpu_count()} cores, CI "
          "has 2; moto is a local Python server, not DynamoDB's service latency)")
    return {"lambda.webhook.dynamodb.p50": percentile(dyn, 50),
            "lambda.webhook.dynamodb.p99": percentile(dyn, 99),
            "lambda.webhook.sqlite.p50": percentile(sql, 50),
            "lambda.webhook.sqlite.p99": percentile(sql, 99)}


def report_cold(cold: list[dict[str, Any]]) -> None:
    """The cold invocations' memory: each, and the largest peak."""
    print("cold Lambda-style environment (fresh interpreter, lean package's absent modules "
          "refused; import paywire.aws.http, one webhook on DynamoDB over moto)")
    for run in cold:
        print(f"  answer {run['status']}  import {run['import_ms']:5d} ms  first delivery "
              f"{run['first_ms']:5d} ms  RSS after imports {run['rss_after_import_mb']:6.1f} MB"
              f"  peak {run['peak_rss_mb']:6.1f} MB  absent modules loaded: "
              f"{run['absent_loaded'] or 'none'}")
    print(f"  largest peak: {max(r['peak_rss_mb'] for r in cold):.1f} MB")


def main() -> None:
    """Parse arguments and run both parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="preset for the options below (default full: 300, 7, 3)")
    parser.add_argument("--deliveries", type=int, default=None,
                        help="measured deliveries per store")
    parser.add_argument("--imports", type=int, default=None,
                        help="fresh interpreters per import statement")
    parser.add_argument("--cold-runs", type=int, default=None,
                        help="cold interpreters each taking one webhook")
    parser.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    goals.add_arguments(parser)
    args = parser.parse_args()
    sized(args, SIZES)
    if args.deliveries < 10 or args.imports < 1 or args.cold_runs < 1:
        parser.error("--deliveries must be at least 10, --imports and --cold-runs at least 1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the figures, not INFO lines
    figures = report_imports(cold_imports(args.imports))
    cold: list[dict[str, Any]] = []
    figures.update(report_webhooks(run_webhooks(args.deliveries, args.cold_runs, cold,
                                                args.warmup)))
    report_cold(cold)
    figures["lambda.cold.peak_rss_mb"] = max(r["peak_rss_mb"] for r in cold)
    goals.report(figures, bench="lambda_webhook", json_path=args.json,
                 settings=benchkit.settings(args))


if __name__ == "__main__":
    main()
