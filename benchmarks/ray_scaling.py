"""Scoring and training on a real multi-node Ray cluster: 1, 2 and 4 scoring workers against the bare forward pass,
single-device against data-parallel training, in one run.

    python -m benchmarks.ray_scaling [--save] [--quick] [--repeats 2]

A synthetic XA cohort is written to a temporary folder and a video model (R(2+1)D, the vessel task's default
hyper-parameters) is trained briefly on half of it; the other half is scored. The cluster is started here as
separate processes, as on real machines (`gpu_workers.local_cluster`: a head that schedules only and two worker
nodes of two CPUs each, so up to four one-CPU scoring actors fit), and this process connects to it as the
orchestrator does (RAY_ADDRESS). Every figure goes through the product's own code:

- bare forward: the model in eval mode on the scorer's own batches, already decoded, cropped and in memory, in
  this process with one thread (what one scoring actor has), timed after a warm-up;
- Ray, n workers: `RayExecutor(scoring_workers=n).score_stream` over the scored runs in chunks, exactly as a
  scoring job runs: actors start and load the model, read each run's decoded, model-sized copy (`derived/`,
  written once before the timed runs, as the first job on a cohort would), crop, score, compute uncertainty and
  embeddings, and stream results back. "end to end" includes starting the actors; "steady" counts from the first
  chunk back to the last (what a long job sees);
- training: the same request (epochs fixed, no early stop) as one Ray task on one worker, and through Ray Train
  on two workers (DDP, per-epoch checkpoints), wall seconds from submit to result.

Ratios are against the bare forward pass (overhead) and against one worker (scaling), measured in this one run.
With `--save` the table goes to `benchmarks/results/ray_scaling.txt` (CPU) or `ray_scaling-<gpu>.txt`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.common import machine_line, save, table
from benchmarks.scoring import Scale, bare_batches, best_of, vessel_cases

SCALE = Scale(
    xa_patients=16,
    xa_frames=(24, 40),
    xa_size=256,
    oct_pullbacks=0,
    oct_frames=0,
    oct_size=0,
    spect_patients=0,
    spect_size=0,
    epochs=1,
)
QUICK = replace(SCALE, xa_patients=4, xa_frames=(12, 16), xa_size=128)
# The scored runs are listed again and again up to this many items, so the actors' start-up (a second or two) is a
# small part of a job, as in a real scoring job of thousands of runs; each chunk still reads, crops and scores.
ITEMS, QUICK_ITEMS = 2048, 256
CHUNK = 32  # runs per scoring chunk
WORKERS = (1, 2, 4)
TRAIN_EPOCHS = 3


def stream_time(executor, template, refs, repeats: int) -> tuple[float, float]:
    """Return (best end-to-end seconds, best steady seconds from the first chunk back to the last)."""
    from gpu_workers.executors import ScoreChunk

    chunks = [ScoreChunk(index=i, refs=tuple(refs[i : i + CHUNK]), seed=i) for i in range(0, len(refs), CHUNK)]
    best_total, best_steady = float("inf"), float("inf")
    for _ in range(repeats):
        started, first, scored = time.perf_counter(), None, 0
        for event in executor.score_stream(template, chunks, key="bench", count=len(chunks), poll_seconds=0.05):
            if event.error:
                raise RuntimeError(event.error)
            if event.chunk is not None:
                scored += len(event.scores)
                first = first or time.perf_counter()
        end = time.perf_counter()
        if scored != len(refs):
            raise RuntimeError(f"scored {scored} of {len(refs)} runs")
        best_total = min(best_total, end - started)
        # The first chunk's items are not counted in the steady rate: its time is the actors' start-up.
        best_steady = min(best_steady, (end - first) * len(refs) / max(len(refs) - CHUNK, 1))
    return best_total, best_steady


def train_seconds(executor, request) -> float:
    started = time.perf_counter()
    handle = executor.submit(request, key=f"bench-train-{request.workers}")
    while True:
        polled = executor.poll(handle, timeout=0.5)
        if polled.done:
            if polled.error:
                raise RuntimeError(polled.error)
            return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/ray_scaling*.txt")
    parser.add_argument("--quick", action="store_true", help="a small cohort (a smoke run)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    scale = QUICK if args.quick else SCALE
    load = os.getloadavg()[0]
    started = time.perf_counter()

    from gpu_workers.cluster import cluster_has_gpu, ray_connect
    from gpu_workers.executors import RayExecutor
    from gpu_workers.local_cluster import LocalRayCluster
    from gpu_workers.workers import ScoringModel
    from learning.tasks import ScoreRequest, TrainRequest, fit, get_task, weights_load

    with tempfile.TemporaryDirectory(prefix="lumen-ray-scaling-") as tmp:
        folder = Path(tmp)
        case = next(c for c in vessel_cases(folder, scale) if c.family == "r2plus1d")
        device = torch.device("cpu")
        request = TrainRequest(
            task=case.task,
            family=case.family,
            hparams={"epochs": scale.epochs, "patience": 0},
            train=case.train,
            validation=(),
            test=(),
            media_root=str(folder),
        )
        weights = fit(get_task(case.task, folder), request, device).weights
        template = ScoreRequest(task=case.task, weights=weights, refs=(), media_root=str(folder), batch_size=16)
        items = QUICK_ITEMS if args.quick else ITEMS
        refs = [case.refs[i % len(case.refs)] for i in range(items)]

        # The decoded, model-sized copies every later job reads (the first scoring of a cohort writes them).
        ScoringModel(case.task, weights, str(folder), device="cpu").score(tuple(case.refs), 0, 16)

        torch.set_num_threads(1)  # one scoring actor's share
        spec = get_task(case.task, folder)
        data = weights_load(weights)
        params = spec.params_class.parse(data["hparams"])
        model = spec.build(data["family"], params)
        model.load_state_dict(data["state_dict"])
        model.eval()
        batches, per_item = bare_batches(spec, case.family, params, case.refs, 16, device, 0)

        def forward() -> None:
            for calls in batches:
                for inputs in calls:
                    model(*inputs)

        with torch.no_grad():
            forward()
            bare_once, _ = best_of(args.repeats, device, forward)
        bare = bare_once * len(refs) / len(case.refs)  # the bare rate over the distinct runs, for `items` of them
        torch.set_num_threads(os.cpu_count() or 1)

        rows = []
        with LocalRayCluster(workers=2, cpus_per_node=2, head_cpus=0, object_store_bytes=512 * 1024**2) as cluster:
            ray = ray_connect(address=cluster.address)
            gpu = cluster_has_gpu()
            try:
                one_steady = None
                for workers in WORKERS:
                    executor = RayExecutor(scoring_workers=workers)
                    total, steady = stream_time(executor, template, refs, args.repeats)
                    executor.close()
                    one_steady = one_steady or steady
                    rows.append(
                        (
                            f"Ray, {workers} worker{'s' if workers > 1 else ''}",
                            len(refs) / total,
                            len(refs) / steady,
                            f"{one_steady / steady:.2f}x",
                            f"{(len(refs) / bare) / (len(refs) / steady):.2f}x",
                        )
                    )
                executor = RayExecutor()
                training = replace(request, hparams={"epochs": TRAIN_EPOCHS, "patience": 0})
                single = train_seconds(executor, replace(training, workers=1))
                parallel = train_seconds(
                    executor, replace(training, workers=2, checkpoint_dir=str(folder / "checkpoints"))
                )
                executor.close()
            finally:
                ray.shutdown()

    bare_rate = len(refs) / bare
    header = (
        f"# Ray scaling: scoring and training on a multi-node Ray cluster — {datetime.date.today().isoformat()}\n"
        f"{machine_line()} · load average {load:.1f} at start · "
        f"{'GPU' if gpu else 'CPU only'} · Ray head (0 CPUs) + 2 worker nodes x 2 CPUs, separate processes\n"
        f"vessel R(2+1)D, {len(refs)} runs scored ({len(case.refs)} distinct) of {scale.xa_size}², "
        f"{scale.xa_frames[0]}-{scale.xa_frames[1]} frames, {per_item} crops per run, chunks of {CHUNK} runs; "
        f"training: {len(case.train)} runs, {TRAIN_EPOCHS} epochs; best of {args.repeats}\n"
    )
    scoring = table(
        ["scoring", "end to end (runs/s)", "steady (runs/s)", "vs 1 worker", "bare forward / steady"],
        [("bare forward, 1 thread, in memory", bare_rate, bare_rate, "", "1.00x"), *rows],
    )
    trainings = table(
        ["training (same request)", "seconds", "vs 1 worker"],
        [
            ("Ray task, 1 worker", single, "1.00x"),
            ("Ray Train, 2 workers (DDP, epoch checkpoints)", parallel, f"{single / parallel:.2f}x"),
        ],
    )
    text = (
        f"{header}\n{scoring}\n\n{trainings}\n\n"
        "bare forward / steady: how much slower a worker scores than the model's forward pass alone (1.00x = no "
        "overhead). vs 1 worker: steady throughput against one worker's.\n"
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    print(text)
    if args.save:
        name = "ray_scaling.txt" if not gpu else f"ray_scaling-{torch.cuda.get_device_name(0).replace(' ', '_')}.txt"
        print(f"saved to {save(name, text)}")


if __name__ == "__main__":
    main()
