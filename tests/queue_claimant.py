"""A claimant process for queue tests and benchmarks: claims jobs until the queue is empty.

Usage: python tests/queue_claimant.py DB_URL OUT_FILE [--hold-s S] [--lease-s S] [--start-at T]
Writes one claimed job id per line to OUT_FILE (flushed per claim, so a killed claimant's
claims are visible), completing each job unless --hold-s is given (then it sleeps holding
the first job, to be killed).
"""

import argparse
import time

from scalelab.store.engine import open_engine
from scalelab.store.queue import claim, complete


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("out")
    parser.add_argument("--hold-s", type=float, default=0.0)
    parser.add_argument("--lease-s", type=float, default=600.0)
    parser.add_argument("--start-at", type=float, default=0.0, help="wall time to start at")
    args = parser.parse_args()
    engine = open_engine(args.db, create=False)
    while time.time() < args.start_at:  # line claimants up so they really contend
        time.sleep(0.001)
    with open(args.out, "w") as out:
        while (lease := claim(engine, lease_s=args.lease_s)) is not None:
            out.write(f"{lease.job_id} {lease.attempt} {time.time()}\n")
            out.flush()
            if args.hold_s:
                time.sleep(args.hold_s)
                return
            complete(engine, lease)


if __name__ == "__main__":
    main()
