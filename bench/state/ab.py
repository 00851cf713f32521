#!/usr/bin/env python3
"""Time commands in turn, one run of each per round, so that a machine that
speeds up or slows down during the measurement affects them all alike.

    bench/state/ab.py ROUNDS 'CMD A ...' 'CMD B ...' ...

Each command is split on spaces (no shell) and run with its output thrown
away, three times untimed first. Prints the median, the first quartile and the
minimum wall-clock time of each, in milliseconds (process start-up included).
"""
import os
import statistics
import subprocess
import sys
import time


def main():
    rounds = int(sys.argv[1])
    commands = sys.argv[2:]
    times = {c: [] for c in commands}
    with open(os.devnull, "w") as null:
        def run(c):
            subprocess.run(c.split(), stdout=null, stderr=null, check=False)
        for c in commands:
            for _ in range(3):
                run(c)
        for _ in range(rounds):
            for c in commands:
                start = time.perf_counter()
                run(c)
                times[c].append((time.perf_counter() - start) * 1000)
    for c in commands:
        t = sorted(times[c])
        print(f"median {statistics.median(t):6.2f}  p25 {t[len(t) // 4]:6.2f}  "
              f"min {t[0]:6.2f}  {c}")


if __name__ == "__main__":
    main()
