"""Model serving benchmark: ``.venv/bin/python -m bench.models_bench [--quick]``.

Generates a data set, trains a model, registers it in a temporary registry, then measures
in one run: ONNX vs native LightGBM per row (single rows and batches of 64), the path
explainer, full ``ModelService.score`` (score + calibration + explanation) for one event
and for 64 (explaining all, or only scores >= 500: ``explain_from``), and throughput of
concurrent asyncio clients with and without the micro-batcher.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np

from lendgate.datagen import GenConfig, Generator, write_events
from lendgate.models.registry import FileSystemRegistry
from lendgate.models.serving import MicroBatcher, ModelService
from lendgate.models.train import TrainConfig, load_dataset, train

NAME = "application-gbdt"


def per_call_us(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """p50 and p99 of one call, in microseconds."""
    for _ in range(min(200, n)):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t) / 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


async def clients(
    score: Callable[[list[float]], object], rows: np.ndarray, n_clients: int, seconds: float
) -> tuple[int, list[float]]:
    """Concurrent clients scoring rows for ``seconds``; count and latencies (µs)."""
    done = 0
    lat: list[float] = []
    end = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < end:
            t = time.perf_counter_ns()
            result = score(list(rows[i % len(rows)]))
            if asyncio.iscoroutine(result):
                await result
            else:
                await asyncio.sleep(0)  # yield like a real handler would
            lat.append((time.perf_counter_ns() - t) / 1000)
            done += 1
            i += n_clients

    await asyncio.gather(*(client(k) for k in range(n_clients)))
    return done, lat


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller data, shorter runs")
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "events.jsonl"
        write_events(Generator(GenConfig(seed=5, applicants=6000, days=90)), data, progress=False)
        card = train(data, root / "model", TrainConfig())
        rows = load_dataset(data).x
        booster = lgb.Booster(model_file=str(root / "model" / "model.txt"))
        registry = FileSystemRegistry(root / "models")
        service = ModelService(registry)
        service.promote(NAME, registry.register(NAME, root / "model"))
        reviewed = ModelService(registry, explain_from=500)  # explains scores >= 500 only
        reviewed.reload(NAME)
        slot_model = service._slots[NAME].champion  # benchmark reads internals
        assert slot_model is not None
        explainer = slot_model.explainer
        assert explainer is not None
        one, batch = rows[:1], rows[:64]
        one64 = one.astype(np.float64)
        batch64 = batch.astype(np.float64)
        print(
            f"model: {card['params']['rounds']} trees, {card['params']['num_leaves']} leaves,"
            f" {len(card['features'])} features; hold-out ROC-AUC"
            f" {card['metrics']['holdout_roc_auc']:.4f},"
            f" PR-AUC {card['metrics']['holdout_pr_auc']:.4f}"
        )
        print(f"{'measure':52} {'p50 µs':>9} {'p99 µs':>9}")
        results = {
            "ONNX runtime, 1 row": lambda: slot_model.onnx.predict(one),
            "native LightGBM, 1 row": lambda: booster.predict(one64, num_threads=1),
            "ONNX runtime, batch of 64 (per batch)": lambda: slot_model.onnx.predict(batch),
            "native LightGBM, batch of 64 (per batch)": lambda: booster.predict(
                batch64, num_threads=1
            ),
            "path explainer, 1 row": lambda: explainer.contributions(one),
            "path explainer, batch of 64 (per batch)": lambda: explainer.contributions(batch),
            "ModelService.score, 1 event (score+calib+explain)": lambda: service.score(NAME, one),
            "ModelService.score, 64 events (per batch)": lambda: service.score(NAME, batch),
            "ModelService.score, 64 events, explain >= 500 only": lambda: reviewed.score(
                NAME, batch
            ),
        }
        for label, fn in results.items():
            p50, p99 = per_call_us(fn, n)
            extra = f"  ({p50 / 64:.1f} µs/row)" if "64" in label else ""
            print(f"{label:52} {p50:9.1f} {p99:9.1f}{extra}")
        seconds = 1.0 if args.quick else 3.0
        for n_clients in (1, 16, 64):
            for mode in ("direct", "batched"):
                batcher = MicroBatcher(service, NAME, max_batch=64)

                def direct(r: list[float]) -> object:
                    return service.score(NAME, [r])

                score_fn: Callable[[list[float]], object] = (
                    batcher.score if mode == "batched" else direct
                )
                count, lat = asyncio.run(clients(score_fn, rows, n_clients, seconds))
                lat.sort()
                print(
                    f"{n_clients:3d} concurrent clients, {mode:8}:"
                    f" {count / seconds:9,.0f} events/s, p50 {statistics.median(lat):8.1f} µs,"
                    f" p99 {lat[int(len(lat) * 0.99)]:8.1f} µs"
                    + (
                        f", mean batch {count / max(batcher.batches, 1):.1f}"
                        if mode == "batched"
                        else ""
                    )
                )


if __name__ == "__main__":
    main()
