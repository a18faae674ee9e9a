"""Where a cold CUDA compile's wall time goes: the compile schedule of one call, summarized.

    EMBER_COMPILE_TIMES=/tmp/x.json python benchmarks/cuda_cold_compile.py --step --tf32 --no-serial
    python tools/compile_schedule.py /tmp/x.json [--all]

The JSON (ir/compile_times.py) holds, for every kernel compiled in the workers, when it was
handed over, began and ended in a worker, and when the call collected it. This prints, for
the call with the most compiles: each worker's start, readiness, compiles and busy time;
the last compiles to end; when the compiles were handed over; and how long the call spent
with 0, 1, ... workers busy. A long stretch at concurrency 1 with handovers trailing the
previous end is a compile the call waited for before making the next (one-at-a-time
compiles: see docs/cuda.md, "Weight-gradient timings compile together").
"""
from __future__ import annotations

import argparse
import collections
import json


def _load(path: str) -> dict:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return max(rows, key=lambda r: len(r["records"].get("compile schedule", [])))


def _workers(schedule: list, t0: float) -> None:
    by_pid = collections.defaultdict(list)
    for s in schedule:
        by_pid[s["worker"][0]].append(s)
    print("worker   start  ready   n   busy    cpu  first began  last ended (s from call start)")
    for pid, mine in sorted(by_pid.items(), key=lambda kv: min(x["began"] for x in kv[1])):
        w = mine[0]["worker"]
        start, ready = (w[1] - t0, w[2] - t0) if len(w) > 2 else (float("nan"),) * 2
        busy = sum(x["ended"] - x["began"] for x in mine)
        print(f"{pid:>6} {start:6.2f} {ready:6.2f} {len(mine):3d} {busy:6.2f} "
              f"{sum(x['cpu'] for x in mine):6.2f} {min(x['began'] for x in mine) - t0:12.2f} "
              f"{max(x['ended'] for x in mine) - t0:11.2f}")


def _concurrency(schedule: list, t0: float) -> dict:
    events = sorted([(x["began"] - t0, 1) for x in schedule] +
                    [(x["ended"] - t0, -1) for x in schedule])
    busy, seconds, last = 0, collections.Counter(), events[0][0]
    for t, change in events:
        seconds[busy] += t - last
        busy, last = busy + change, t
    return {k: round(v, 2) for k, v in sorted(seconds.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--all", action="store_true", help="every compile, not the last 25")
    args = parser.parse_args()
    row = _load(args.json)
    t0, schedule = row["began"], row["records"].get("compile schedule", [])
    if not schedule:
        raise SystemExit("no compile schedule in this file (nothing compiled in workers)")
    print(f"{row['call']}: {row['seconds']:.3f} s, {len(schedule)} compiles in workers")
    _workers(schedule, t0)
    print("handed over / began / ended / collected (s from call start), wall, CPU, kernel")
    ordered = sorted(schedule, key=lambda x: x["began"] if args.all else x["ended"])
    for s in ordered if args.all else ordered[-25:]:
        print(f"{s['submitted'] - t0:6.2f} {s['began'] - t0:6.2f} {s['ended'] - t0:6.2f} "
              f"{s['collected'] - t0:6.2f} {s['ended'] - s['began']:5.2f} {s['cpu']:5.2f} "
              f"{s['kernel']}")
    handed = sorted(x["submitted"] - t0 for x in schedule)
    print("handed over at quantiles 0/.25/.5/.75/.9/1:",
          [round(handed[int(q * (len(handed) - 1))], 2) for q in (0, .25, .5, .75, .9, 1)])
    print("seconds with N workers busy:", _concurrency(schedule, t0))
    print("wall in workers %.2f s, CPU %.2f s" % (sum(x["ended"] - x["began"] for x in schedule),
                                                  sum(x["cpu"] for x in schedule)))


if __name__ == "__main__":
    main()
