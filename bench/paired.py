"""Compare two versions of Conveyor on this noisy machine: run a benchmark against the
working tree and against a git revision alternately, and report the median of the
per-pair ratios.

    .venv/bin/python bench/paired.py --base HEAD~1 --pairs 12 \\
        --metric 'produce, one at a time +\\| +([\\d,.]+)' \\
        -- bench/native_bench.py --seconds 2

The same code timed twice in a row here can differ by a factor of 2, and by more than most changes
are worth; two runs made right after each other see much the same machine, so the ratio
within a pair is steadier than either figure. Each pair runs the benchmark once with
``PYTHONPATH=<worktree of --base>/src`` and once with this tree's ``src`` (the order
alternates, so neither always goes first); a server the benchmark starts inherits it.
The benchmark script itself is this tree's for both.
``--metric`` is a regular expression whose first group is the figure (commas are
dropped); without it, the last number the benchmark prints. A ratio above 1 means the
working tree's figure is higher: for a time, lower is better. The worktree is removed
at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def figure(output: str, metric: re.Pattern[str] | None) -> float:
    if metric is None:
        found = NUMBER.findall(output)
        if not found:
            raise SystemExit(f"no number in the benchmark's output:\n{output}")
        text = found[-1]
    else:
        m = metric.search(output)
        if m is None:
            raise SystemExit(f"--metric matched nothing in the benchmark's output:\n{output}")
        text = m.group(1)
    return float(text.replace(",", ""))


def run(src: Path, argv: list[str], metric: re.Pattern[str] | None) -> float:
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"the benchmark failed ({proc.returncode}):\n{proc.stderr}")
    return figure(proc.stdout, metric)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base", required=True, help="the git revision to compare against")
    ap.add_argument("--pairs", type=int, default=10, help="pairs of runs (default 10)")
    ap.add_argument("--metric", help="regular expression; its first group is the figure")
    ap.add_argument("bench", nargs=argparse.REMAINDER, help="-- the benchmark and its args")
    args = ap.parse_args()
    argv = args.bench[1:] if args.bench[:1] == ["--"] else args.bench
    if not argv:
        ap.error("name the benchmark after --")
    metric = re.compile(args.metric) if args.metric else None

    with tempfile.TemporaryDirectory(prefix="conveyor-paired-") as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), args.base],
            cwd=ROOT,
            check=True,
        )
        try:
            ratios = []
            for i in range(args.pairs):
                trees = [("base", tree / "src"), ("new", ROOT / "src")]
                if i % 2:
                    trees.reverse()
                got = {name: run(src, argv, metric) for name, src in trees}
                ratios.append(got["new"] / got["base"])
                print(
                    f"pair {i + 1}: base {got['base']:,.2f}  new {got['new']:,.2f}  "
                    f"new/base {ratios[-1]:.3f}",
                    flush=True,
                )
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False
            )
    print(
        f"new/base: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, "
        f"max {max(ratios):.3f} over {len(ratios)} pairs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
