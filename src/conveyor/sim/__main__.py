"""``python -m conveyor.sim``: replay one seed, or run a range of seeds.

    python -m conveyor.sim --seed 1234              # one seed; prints its trace on failure
    python -m conveyor.sim --seeds 0:10000 --jobs 2 # many seeds, in parallel processes
    python -m conveyor.sim --seed 7 --buggify commit_on_leader_fsync --trace

Exit status 1 when any seed finds a violation; each failure is printed with the command
that replays it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time

from conveyor.replication.buggify import Buggify
from conveyor.sim.cluster import SimOptions, SimResult, run, safety_ms_default

BUGGIFY_NAMES = [*Buggify.__struct_fields__, "elect_outside_isr"]
trace_tail_lines = 80


def options_from(args: argparse.Namespace, seed: int) -> SimOptions:
    names = set(args.buggify or [])
    unknown = names - set(BUGGIFY_NAMES)
    if unknown:
        raise SystemExit(f"unknown buggify switch: {', '.join(sorted(unknown))}")
    buggify = Buggify(**{n: True for n in names if n != "elect_outside_isr"})
    return SimOptions(
        seed=seed,
        nodes=args.nodes,
        safety_ms=args.safety_ms,
        buggify=buggify,
        elect_outside_isr="elect_outside_isr" in names,
        lazy_disk=args.lazy_disk,
        faults=not args.no_faults,
        isr_check=not args.no_isr_check,
        partition_state=args.partition_state,
        trace=args.trace,
    )


def _run_one(options: SimOptions) -> SimResult:
    result = run(options)
    if result.ok:
        result.trace = []  # keep what crosses the process boundary small
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conveyor.sim", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="replay exactly this seed")
    which.add_argument("--seeds", help="a range A:B of seeds (B excluded)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for --seeds")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--safety-ms", type=int, default=safety_ms_default)
    parser.add_argument("--buggify", action="append", choices=BUGGIFY_NAMES)
    lazy = parser.add_mutually_exclusive_group()
    lazy.add_argument("--lazy-disk", dest="lazy_disk", action="store_true", default=None)
    lazy.add_argument("--no-lazy-disk", dest="lazy_disk", action="store_false")
    parser.add_argument("--no-faults", action="store_true", help="no injected faults")
    parser.add_argument(
        "--no-isr-check",
        action="store_true",
        help="do not check ISR members' durable logs; report only losses that happen",
    )
    parser.add_argument(
        "--partition-state",
        action="store_true",
        help="replicate real Append records and apply them to PartitionState",
    )
    parser.add_argument("--trace", action="store_true", help="print every event")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at a failure")
    args = parser.parse_args(argv)

    if args.seed is not None:
        result = run(options_from(args, args.seed))
        if not result.ok and not args.trace:
            print("\n".join(result.trace[-trace_tail_lines:]))
        print(result.describe())
        print("stats:", result.stats)
        return 0 if result.ok else 1

    start_s, _, end_s = args.seeds.partition(":")
    seeds = range(int(start_s), int(end_s))
    all_options = [options_from(args, s) for s in seeds]
    began = time.monotonic()
    failures: list[SimResult] = []
    done = 0
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            results = pool.imap(_run_one, all_options, chunksize=4)
            for result in results:
                done += 1
                if not result.ok:
                    failures.append(result)
                    print(result.describe(), flush=True)
                    if not args.keep_going:
                        pool.terminate()
                        break
    else:
        for options in all_options:
            result = _run_one(options)
            done += 1
            if not result.ok:
                failures.append(result)
                print(result.describe(), flush=True)
                if not args.keep_going:
                    break
    elapsed = time.monotonic() - began
    print(
        f"{done} seeds in {elapsed:.1f} s ({elapsed / max(done, 1) * 1000:.0f} ms a seed, "
        f"{args.jobs} job(s)): {done - len(failures)} ok, {len(failures)} failed"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
