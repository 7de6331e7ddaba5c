"""Shared timer for the benchmarks: median wall time with device synchronisation."""

import statistics
import time

import torch


def median_time(fn, rounds: int, device: str) -> float:
    """Median seconds of fn() over `rounds` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(rounds):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
