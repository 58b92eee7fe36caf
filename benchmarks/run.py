"""The benchmark CLI: `.venv/bin/python -m benchmarks.run [--quick] [--users N] [--days D] [--repeat R]`.

Prepares (or reuses) the seeded data, runs the selected benchmarks and merges their sections into
report.md / results.json: `benchmarks/` for a full-size run, `benchmarks/data/quick/` for `--quick`
(so a smoke run never replaces the full-size report; `--out` overrides).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import backfill, data, http_serving, online, online_load, push, report, training_set

HERE = Path(__file__).resolve().parent
# name -> callable(args, log) -> (results, markdown)
BENCHMARKS = {}


def _training_set(args: argparse.Namespace, log) -> tuple[dict, str]:
    ds = data.ensure_dataset(args.users, args.days, args.seed, log=log)
    entities = data.ensure_entity_frame(ds, args.entity_rows)
    return training_set.run(ds, entities, repeat=args.repeat, feast_timeout_sec=args.feast_timeout,
                            mem_cap_mb=args.mem_cap_gb * 1024, work_dir=ds.home / "results", log=log,
                            skip_feast=args.skip_feast)


BENCHMARKS[training_set.NAME] = _training_set


def _push(args: argparse.Namespace, log) -> tuple[dict, str]:
    rate, seconds, single = (200, 10, 200) if args.quick else (1000, 60, 1000)
    return push.run(rate=rate, seconds=seconds, single_events=single, mem_cap_mb=args.mem_cap_gb * 1024, log=log,
                    repeat=args.repeat)


BENCHMARKS[push.NAME] = _push


def _online(args: argparse.Namespace, log) -> tuple[dict, str]:
    return online.run(users=args.users, repeat=args.repeat, calls=300 if args.quick else 2000,
                      mem_cap_mb=args.mem_cap_gb * 1024, log=log)


BENCHMARKS[online.NAME] = _online


def _online_load(args: argparse.Namespace, log) -> tuple[dict, str]:
    return online_load.run(users=args.users, seed=args.seed, seconds=5 if args.quick else 30, log=log)


BENCHMARKS[online_load.NAME] = _online_load


def _http_serving(args: argparse.Namespace, log) -> tuple[dict, str]:
    seconds, step_seconds = (3, 1.5) if args.quick else (10, 4)
    return http_serving.run(users=args.users, seed=args.seed, seconds=seconds, step_seconds=step_seconds, log=log)


BENCHMARKS[http_serving.NAME] = _http_serving


def _backfill(args: argparse.Namespace, log) -> tuple[dict, str]:
    return backfill.run(users=args.users, days=args.days, seed=args.seed, repeat=args.repeat, per_run=args.per_run,
                        mem_cap_mb=args.mem_cap_gb * 1024, log=log)


BENCHMARKS[backfill.NAME] = _backfill


def _backfill_engines(args: argparse.Namespace, log) -> tuple[dict, str]:
    return backfill.run_engines(users=args.users, days=args.days, seed=args.seed, per_run=args.per_run,
                                mem_cap_mb=args.mem_cap_gb * 1024, log=log)


BENCHMARKS[backfill.ENGINES_NAME] = _backfill_engines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: 2,000 users, 30 days, 5,000 entity rows")
    p.add_argument("--users", type=int, help="users in the generated sessions log (default 100,000)")
    p.add_argument("--days", type=int, help="daily partitions ending 2026-10-31 (default 365)")
    p.add_argument("--entity-rows", type=int, help="rows of the entity frame (default 100,000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measured path, each in a fresh process (default 3)")
    p.add_argument("--seed", type=int, default=7, help="seed of the data and entity frame (default 7)")
    p.add_argument("--feast-timeout", type=float, default=1800, help="seconds before a Feast run is killed (default 1800)")
    p.add_argument("--mem-cap-gb", type=float, default=14, help="kill a measured process above this RSS (default 14)")
    p.add_argument("--skip-feast", action="store_true", help="do not run Feast (for iterating on the others)")
    p.add_argument("--per-run", type=int, default=92, help="partitions per Dagster run in the backfill benchmark (default 92)")
    p.add_argument("--only", choices=sorted(BENCHMARKS), action="append", help="run only these benchmarks")
    p.add_argument("--out", type=Path, help="directory of report.md and results.json")
    args = p.parse_args(argv)
    quick = {"users": 2_000, "days": 30, "entity_rows": 5_000}
    full = {"users": 100_000, "days": 365, "entity_rows": 100_000}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.out is None:
        args.out = HERE / "data" / "quick" if args.quick else HERE
    if args.repeat < 1 or args.users < 1 or args.days < 1 or args.entity_rows < 1:
        p.error("--repeat, --users, --days and --entity-rows must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    for name in args.only or list(BENCHMARKS):
        log(f"{name}: users={args.users:,} days={args.days} entity_rows={args.entity_rows:,} repeat={args.repeat}")
        results, markdown = BENCHMARKS[name](args, log)
        json_path, md_path = report.update(args.out, name, results, markdown)
        print(markdown, flush=True)
        log(f"{name}: wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
