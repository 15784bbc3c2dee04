"""`paywire reconcile`: ask the providers for the truth about stuck orders, pending refunds and
the truth queue, once (for cron); `--truth-queue` works off only the queued truth fetches."""

from __future__ import annotations

from typing import Annotated

import typer

from paywire.cli.common import console, local_settings

# Rounds of `run_once` one `reconcile --truth-queue` makes at most (a guard, not a budget).
MAX_TRUTH_ROUNDS = 1000


def reconcile(
    truth_queue: Annotated[bool, typer.Option(
        "--truth-queue", help="Only work off the queued truth fetches until none is due.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Ask PayPal for the truth about stuck orders, pending refunds and the truth queue
    (one-shot, for cron; exit 1 if anything was flagged or failed in this pass)."""
    if truth_queue:
        _drain_truth_queue()
        return
    import asyncio
    import json

    from rich.table import Table

    from paywire import logs
    from paywire.bootstrap import build
    from paywire.domain.errors import PaywireError
    from paywire.services.reconcile import ReconcileReport

    settings = local_settings()
    logs.setup(settings, "json")

    async def full_pass() -> ReconcileReport:
        container = await build(settings)
        total = ReconcileReport()
        try:
            for _ in range(MAX_TRUTH_ROUNDS):
                report = await container.reconciler.run_once()
                total.add(report)
                if report.checked < settings.reconcile_batch and (
                        report.truth_processed < settings.truth_fetch_batch):
                    break
        finally:
            await container.aclose()
        return total

    try:
        report = asyncio.run(full_pass())
    except PaywireError as exc:
        if as_json:
            typer.echo(json.dumps({"error": exc.message}))
        else:
            console.print(f"[red]reconcile failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        table = Table(title="reconciliation pass")
        table.add_column("what")
        table.add_column("count", justify="right")
        for name, value in report.as_json().items():
            if isinstance(value, int):
                table.add_row(name.replace("_", " "), str(value))
        console.print(table, highlight=False)
        for order_id, reason in report.attention:
            console.print(f"[red]needs attention:[/] {order_id} ({reason})", highlight=False)
    if not report.ok:
        raise typer.Exit(code=1)



def _drain_truth_queue() -> None:
    """`paywire reconcile --truth-queue`: the truth queue until nothing is due."""
    import asyncio

    from paywire import logs
    from paywire.bootstrap import build
    from paywire.domain.errors import PaywireError

    settings = local_settings()
    logs.setup(settings, "json")

    async def drain() -> tuple[int, dict[str, int]]:
        container = await build(settings)
        try:
            async with container.store.transaction() as uow:
                before = {t.id: t.attempts for t in await uow.list_truth_tasks(limit=100_000)}
            processed = 0
            for _ in range(MAX_TRUTH_ROUNDS):
                done = await container.truth.run_once()
                if not done:
                    break
                processed += done
            async with container.store.transaction() as uow:
                after = await uow.list_truth_tasks(limit=100_000)
        finally:
            await container.aclose()
        counts = {"done": 0, "retrying": 0, "failed": 0, "pending": 0}
        for task in after:
            if task.status == "pending":
                counts["pending"] += 1
            if task.attempts == before.get(task.id, 0):
                continue  # not worked on in this run
            if task.status == "done":
                counts["done"] += 1
            elif task.status == "failed":
                counts["failed"] += 1
            elif task.last_error:
                counts["retrying"] += 1
        return processed, counts

    try:
        processed, counts = asyncio.run(drain())
    except PaywireError as exc:
        console.print(f"[red]reconcile failed:[/] {exc.message}", highlight=False)
        raise typer.Exit(code=1) from None
    console.print(f"truth queue: {processed} processed; {counts['done']} settled, "
                  f"{counts['retrying']} to retry, {counts['failed']} failed (needs attention); "
                  f"{counts['pending']} pending", highlight=False)
    if counts["retrying"] or counts["failed"]:
        raise typer.Exit(code=1)

