"""Every benchmark in turn at one size, then all their goals in one table (`make bench`).

    .venv/bin/python bench/suite.py [--size tiny|small|full] [--json-dir DIR] [--only NAME...]

`BENCHES` is the list `make bench` runs and tests/integration/test_benches.py proves at the tiny
size: one entry per command (a script under bench/ and its options); a new bench is one more
entry. Each runs as its own process with `--size` and `--json`, its output streaming as it
runs; at the end every goal of every bench that ran is printed in one table (bench/goals.py),
with the machine's core count. Sizes: `tiny` proves a bench still works (seconds), `small` is
`make bench` (a few minutes in all on 2 cores), `full` is docs/benchmarks.md's table.

Exit status 0 unless a bench itself failed (exited non-zero, e.g. an order lost or a delivery
refused): a missed goal is printed, never a failure. bench/storm.py is not here: it is a
correctness storm with its own test (tests/integration/test_storm.py), not a goal.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import goals

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """One command of the suite."""

    name: str  # how --only and the test name it
    script: str  # under bench/
    args: tuple[str, ...]
    figures: str  # the prefix of the goal figures it measures (every such goal must print)

    def command(self, size: str, json_path: Path) -> list[str]:
        """The command line at `size`, writing its figures to `json_path`."""
        return [sys.executable, str(HERE / self.script), *self.args, "--size", size,
                "--json", str(json_path)]


BENCHES: tuple[Bench, ...] = (
    Bench("webhook-sqlite", "webhook_ingest.py", ("--store", "sqlite"), "webhook.sqlite."),
    Bench("webhook-postgres", "webhook_ingest.py", ("--store", "postgres"),
          "webhook.postgres."),
    Bench("aps-feedback", "aps_feedback.py", (), "aps."),
    Bench("checkout", "checkout_throughput.py", (), "checkout."),
    Bench("outbox", "outbox_drain.py", (), "outbox."),
    Bench("lambda", "lambda_webhook.py", (), "lambda."),
    Bench("growth", "growth.py", (), "growth."),
)


def expected_goals(bench: Bench) -> list[goals.Goal]:
    """The goals `bench` must print a verdict for."""
    return [g for g in goals.GOALS if g.figure.startswith(bench.figures)]


def main() -> int:
    """Run the suite; 1 if any bench failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "small", "full"], default="small")
    parser.add_argument("--json-dir", type=Path, default=None,
                        help="keep each bench's figures there (NAME.json; default: a "
                             "temporary directory)")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], default=None)
    args = parser.parse_args()
    chosen = [b for b in BENCHES if args.only is None or b.name in args.only]
    with tempfile.TemporaryDirectory(prefix="paywire-bench-suite-") as tmp:
        out_dir = args.json_dir or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        failed: list[str] = []
        verdicts: list[goals.Verdict] = []
        started = time.perf_counter()
        for bench in chosen:
            path = out_dir / f"{bench.name}.json"
            print(f"\n=== {bench.name}: {' '.join(bench.command(args.size, path)[1:])}",
                  flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(bench.command(args.size, path), check=False)  # noqa: S603
            print(f"=== {bench.name}: exit {done.returncode} after "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            if done.returncode or not path.exists():
                failed.append(bench.name)
                continue
            figures = json.loads(path.read_text())["figures"]
            verdicts += goals.verdicts(figures, None)
    print(f"\n=== bench suite, size {args.size}: {len(chosen)} benches in "
          f"{time.perf_counter() - started:.0f} s")
    print("\n".join(goals.lines(verdicts)))
    missed = sum(1 for v in verdicts if not v.met)
    print(f"{len(verdicts)} goals measured, {missed} missed (printed, not a failure)")
    if failed:
        print(f"benches that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
