"""Every benchmark of `make bench` (bench/suite.py's BENCHES) still runs, at its tiny size.

Each is run as `make bench` runs it, in its own process with `--size tiny --json FILE`: it must
exit 0 (a bench exits non-zero when it breaks or sees something wrong, e.g. a delivery not
answered `duplicate`, an order not completed, a fact under two message ids) and print, beside the
machine's core count, a verdict for every goal of bench/goals.py it measures, from figures of
this run. No figure is compared with a goal here: a tiny run on a shared machine times nothing
worth asserting. bench/storm.py has its own test (test_storm.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import suite  # bench/suite.py, found through the path above


@pytest.mark.timeout(200)
@pytest.mark.parametrize("bench", suite.BENCHES, ids=[b.name for b in suite.BENCHES])
def test_bench_runs_tiny_and_prints_a_verdict_for_each_of_its_goals(bench: suite.Bench,
                                                                      tmp_path: Path) -> None:
    """The bench exits 0 at its tiny size and prints (and writes) a verdict for each of its
    goals, with the core count; every figure it wrote is a finite, non-negative number."""
    path = tmp_path / f"{bench.name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWIRE_")
           or k == "PAYWIRE_TEST_POSTGRES_URL"}
    done = subprocess.run(bench.command("tiny", path), capture_output=True, text=True,  # noqa: S603
                          env=env, cwd=tmp_path, timeout=190, check=False)
    output = f"{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
    assert done.returncode == 0, output
    result = json.loads(path.read_text())
    expected = {g.name for g in suite.expected_goals(bench)}
    assert expected, f"{bench.name} measures no goal of bench/goals.py"
    assert {v["name"] for v in result["goals"]} == expected, output
    assert result["cpu_count"] == os.cpu_count()
    assert all(isinstance(v, int | float) and math.isfinite(v) and v >= 0
               for v in result["figures"].values()), result["figures"]
    table = done.stdout[done.stdout.index("goals ("):]
    assert f"{os.cpu_count()} cores" in table.splitlines()[0], output
    for name in expected:
        line = next((x for x in table.splitlines() if name in x), None)
        assert line is not None and line.rstrip().endswith(("met", "MISSED")), output


@pytest.mark.timeout(120)
def test_the_http_client_bench_runs(tmp_path: Path) -> None:
    """bench/http_client.py (not in `make bench`: no goal of its own) still measures every
    engine it is asked for, each against httpx's default transport in the same run."""
    script = Path(__file__).resolve().parents[2] / "bench" / "http_client.py"
    done = subprocess.run([sys.executable, str(script), "--requests", "20",  # noqa: S603
                           "--concurrency", "1", "2", "--engines", "httpx", "lean", "raw-h11"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=110,
                          check=False)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert f"{os.cpu_count()} cores" in done.stdout.splitlines()[0]
    assert rows["httpx"].count("(1.00x)") == 4
    assert all(name in rows for name in ("lean", "raw-h11")), done.stdout


@pytest.mark.timeout(120)
def test_the_http_server_bench_runs(tmp_path: Path) -> None:
    """bench/http_server.py (not in `make bench`) measures each of uvicorn's protocols and
    paywire's bounded one, each answering every request, against h11 in the same run."""
    script = Path(__file__).resolve().parents[2] / "bench" / "http_server.py"
    done = subprocess.run([sys.executable, str(script), "--requests", "50",  # noqa: S603
                           "--rounds", "2"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=110,
                          check=False)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    lines = done.stdout.splitlines()
    assert f"{os.cpu_count()} cores" in lines[0]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip()}
    assert set(rows) == {"h11", "httptools", "bounded"}, done.stdout
    assert rows["h11"].endswith("1.00x h11")


def test_a_database_process_that_exits_mid_pass_never_makes_its_cpu_negative(
        tmp_path: Path) -> None:
    """The webhook bench reads the database server's CPU (benchkit.server_cpu) before and after
    a pass; a backend that exits in between (a closed connection, another client's) takes its
    CPU with it. The figure falls short then, never below zero (a difference of sums did, and
    a tiny run failed on it). Here the "server" is a process of a name of its own that burns
    CPU, then exits between the two readings."""
    import benchkit  # bench/benchkit.py, found through the path above

    burner = tmp_path / "pw-cpu-burner"  # the process's name (comm): its executable's
    burner.symlink_to(sys.executable)
    burn = ("import sys, time\nend = time.process_time() + 0.3\n"
            "while time.process_time() < end: pass\nprint('burnt', flush=True)\nsys.stdin.read()")
    child = subprocess.Popen([str(burner), "-c", burn], stdin=subprocess.PIPE,  # noqa: S603
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        before = benchkit.server_cpu(burner.name)
        assert list(before) == [child.pid] and before[child.pid] >= 0.25
    finally:
        child.communicate("", timeout=10)
    after = benchkit.server_cpu(burner.name)
    assert after == {}
    assert benchkit.server_cpu_used(before, after) == 0.0
