"""Issue 18's performance goals as data, and the one table every bench prints its figures in.

A bench measures figures (a dict: key -> number, e.g. `webhook.sqlite.c8.local.rate`) and hands
them to `report(figures, bench=...)`, which prints every goal of that bench whose figures were
measured in this run:

    goal                                         figure   baseline   ratio    goal      met?
    webhook ingest, SQLite, c8: throughput       412.3/s    903.1/s   0.46x  >= 0.50x  MISSED

A goal compares a figure with a baseline taken in the same run (the echo app, raw emulator calls,
a bare load generator, `import boto3`...): the ratio figure / baseline must be `>=` (or `<=`)
the threshold. Ratios against same-run baselines are what count: the machines are small (2 cores
on CI) and shared, so absolute figures move with whatever else runs. Missing a goal is printed,
never an error; a bench exits non-zero only when it breaks.

`--json PATH` (every bench, through `add_arguments`) also writes the figures and each goal's
verdict; `python bench/goals.py table RESULT.json...` turns such files into the Markdown rows
of docs/benchmarks.md, so the documented table is re-taken by running the benches again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Compare = Literal[">=", "<="]


@dataclass(frozen=True)
class Goal:
    """One goal: `figure / baseline` compared with `threshold`."""

    bench: str  # the script that measures it (bench/<bench>.py)
    name: str  # what the table calls it
    figure: str  # key of the measured figure
    baseline: str  # key of the same-run baseline it is divided by
    compare: Compare
    threshold: float
    unit: str  # of figure and baseline: "/s" (rate) or " ms"

    def ratio(self, figures: Mapping[str, float]) -> float | None:
        """figure / baseline, or None when either was not measured (or the baseline is 0)."""
        figure, baseline = figures.get(self.figure), figures.get(self.baseline)
        if figure is None or not baseline:
            return None
        return figure / baseline

    def met(self, ratio: float) -> bool:
        """Whether `ratio` meets the goal."""
        return ratio >= self.threshold if self.compare == ">=" else ratio <= self.threshold


def _webhook(store: str, label: str) -> list[Goal]:
    key = f"webhook.{store}"
    return [
        Goal("webhook_ingest", f"webhook ingest, {label}, c8: throughput vs echo",
             f"{key}.c8.local.rate", f"{key}.c8.echo.rate", ">=", 0.5, "/s"),
        Goal("webhook_ingest", f"webhook ingest, {label}, c8: p99 vs echo",
             f"{key}.c8.local.p99", f"{key}.c8.echo.p99", "<=", 3.0, " ms"),
        Goal("webhook_ingest", f"webhook ingest, {label}, c1: throughput vs echo",
             f"{key}.c1.local.rate", f"{key}.c1.echo.rate", ">=", 0.5, "/s"),
        Goal("webhook_ingest", f"PayPal duplicate delivery, {label}, c8: vs echo",
             f"{key}.c8.duplicate.rate", f"{key}.c8.echo.rate", ">=", 0.8, "/s"),
    ]


def _checkout(c: int) -> list[Goal]:
    return [
        Goal("checkout_throughput", f"checkout create+capture, SQLite, c{c}: throughput vs raw",
             f"checkout.c{c}.paywire.rate", f"checkout.c{c}.raw.rate", ">=", 0.5, "/s"),
        Goal("checkout_throughput", f"checkout create+capture, SQLite, c{c}: p95 vs raw",
             f"checkout.c{c}.paywire.p95", f"checkout.c{c}.raw.p95", "<=", 3.0, " ms"),
    ]


def _growth(store: str, label: str) -> list[Goal]:
    # bench/growth.py: each rate with its large database stored (1,000,000 orders at the full
    # size) against the same with the small one (1,000), measured in interleaved batches.
    return [Goal("growth", f"cost as data grows, {label}, {what}: large vs small database",
                 f"growth.{store}.{key}.large.rate", f"growth.{store}.{key}.small.rate", ">=",
                 0.9, "/s")
            for key, what in (("ingest", "webhook ingest"), ("checkout", "checkout"))]


GOALS: tuple[Goal, ...] = (
    *_webhook("sqlite", "SQLite"),
    *_webhook("postgres", "PostgreSQL"),
    Goal("aps_feedback", "APS duplicate delivery, SQLite, c8: vs echo",
         "aps.c8.duplicate.rate", "aps.c8.echo.rate", ">=", 0.8, "/s"),
    *_checkout(1),
    *_checkout(8),
    Goal("outbox_drain", "outbox drain, PostgreSQL, 1 worker: vs bare load generator",
         "outbox.w1.rate", "outbox.bare.rate", ">=", 0.5, "/s"),
    Goal("outbox_drain", "outbox drain, shop answering in 100 ms: vs in-flight / 0.1 s",
         "outbox.slow.w1.rate", "outbox.slow.ideal.rate", ">=", 0.8, "/s"),
    Goal("lambda_webhook", "Lambda cold import, HTTP handler: vs import boto3",
         "lambda.import.http.ms", "lambda.import.boto3.ms", "<=", 1.5, " ms"),
    Goal("lambda_webhook", "Lambda cold import, SQS consumer: vs import boto3",
         "lambda.import.sqs.ms", "lambda.import.boto3.ms", "<=", 1.5, " ms"),
    *_growth("sqlite", "SQLite"),
    *_growth("postgres", "PostgreSQL"),
)


@dataclass(frozen=True)
class Verdict:
    """One goal's outcome in one run."""

    goal: Goal
    figure: float
    baseline: float
    ratio: float
    met: bool


def verdicts(figures: Mapping[str, float], bench: str | None = None) -> list[Verdict]:
    """Every goal (of `bench`, if given) whose figure and baseline are in `figures`."""
    out = []
    for goal in GOALS:
        if bench is not None and goal.bench != bench:
            continue
        ratio = goal.ratio(figures)
        if ratio is not None:
            out.append(Verdict(goal, figures[goal.figure], figures[goal.baseline], ratio,
                               goal.met(ratio)))
    return out


def machine() -> str:
    """The machine the figures come from, in one line (the core count first)."""
    return (f"{os.cpu_count()} cores, {platform.machine()}, Python "
            f"{platform.python_version()}")


def _number(value: float, unit: str) -> str:
    return f"{value:.1f}{unit}" if value < 10_000 else f"{value:.0f}{unit}"


def lines(found: Sequence[Verdict]) -> list[str]:
    """The goal table: one line per verdict under a header naming the machine."""
    width = max([len(v.goal.name) for v in found] + [4])
    out = [f"goals ({machine()}; every baseline measured in this same run):",
           f"  {'goal':{width}}  {'figure':>11} {'baseline':>11} {'ratio':>7}  "
           f"{'goal':>8}  met?"]
    for v in found:
        out.append(f"  {v.goal.name:{width}}  {_number(v.figure, v.goal.unit):>11} "
                   f"{_number(v.baseline, v.goal.unit):>11} {v.ratio:6.2f}x  "
                   f"{v.goal.compare} {v.goal.threshold:.2f}x  "
                   f"{'met' if v.met else 'MISSED'}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--json PATH`: also write the figures and verdicts there."""
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures and goal verdicts to PATH (JSON)")


def report(figures: Mapping[str, float], *, bench: str, json_path: Path | None = None,
           settings: Mapping[str, Any] | None = None) -> list[Verdict]:
    """Print `bench`'s goal table from `figures` (and write them to `json_path`)."""
    found = verdicts(figures, bench)
    print("\n".join(lines(found)) if found else f"goals: no goal of {bench} was measured")
    if json_path is not None:
        json_path.write_text(json.dumps({
            "bench": bench, "machine": machine(), "cpu_count": os.cpu_count(),
            "settings": dict(settings or {}), "figures": dict(figures),
            "goals": [{"name": v.goal.name, "figure": v.figure, "baseline": v.baseline,
                       "ratio": v.ratio, "goal": f"{v.goal.compare} {v.goal.threshold:g}x",
                       "met": v.met} for v in found]}, indent=2, sort_keys=True) + "\n")
    return found


def markdown(results: Iterable[Mapping[str, Any]]) -> list[str]:
    """Markdown table rows (docs/benchmarks.md) from `--json` files' contents."""
    out = ["| goal | figure | baseline | ratio | goal | met? |",
           "|---|---:|---:|---:|---|---|"]
    by_name = {g.name: g for g in GOALS}
    for result in results:
        for v in result["goals"]:
            unit = by_name[v["name"]].unit if v["name"] in by_name else ""
            out.append(f"| {v['name']} | {_number(v['figure'], unit)} | "
                       f"{_number(v['baseline'], unit)} | {v['ratio']:.2f}x | {v['goal']} | "
                       f"{'met' if v['met'] else '**missed**'} |")
    return out


def main(argv: Sequence[str]) -> int:
    """`goals.py table RESULT.json...`: the Markdown rows; `goals.py list`: every goal."""
    if argv[:1] == ["table"] and len(argv) > 1:
        results = [json.loads(Path(p).read_text()) for p in argv[1:]]
        machines = sorted({r["machine"] for r in results})
        print("\n".join(markdown(results)))
        print(f"\nmachine: {'; '.join(machines)}")
        return 0
    if argv[:1] == ["list"]:
        for g in GOALS:
            print(f"{g.bench:20} {g.name}: {g.figure} / {g.baseline} {g.compare} {g.threshold:g}")
        return 0
    print("usage: goals.py table RESULT.json... | goals.py list", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
