"""CPU time of a Colored MNIST training step, eager against ``torch.compile`` (networks only, or the whole step).

    python bench/compile_step.py RUN_DIR [--mode eager|networks|step] [--warmup 20] [--steps 40] [--threads 1]

RUN_DIR is a train_disent.py run (its ``config.json`` rebuilds the task and the freshly initialised method; no
checkpoint needed). ``networks`` is ``--compile True`` (each network compiled); ``step`` compiles the method's
whole ``training_step`` (losses, the per-sample EMA, backward and the fused Adam step). Denormals are flushed, as
in the entry scripts. Run one mode per process: compiled code is cached per process.
"""
from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import fire
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.denormals import method_from_run  # noqa: E402

MODES = ("eager", "networks", "step")


def main(run_dir: str, mode: str = "eager", warmup: int = 20, steps: int = 40, threads: int = 1) -> None:
    if mode not in MODES:
        raise SystemExit(f"--mode must be one of {MODES}, got {mode!r}")
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    task, method = method_from_run(run_dir, compile=mode == "networks")
    method.train()
    phase = method.phases()[-1]
    training_step = torch.compile(method.training_step) if mode == "step" else method.training_step
    batches = list(itertools.islice(iter(task.train_loader), warmup + steps))
    start = time.process_time()
    for batch in batches[:warmup]:
        training_step(batch, phase)
    compiled = time.process_time()
    for batch in batches[warmup:]:
        training_step(batch, phase)
    done = time.process_time()
    print(f"{mode}: warm-up {compiled - start:.1f} s CPU, {1e3 * (done - compiled) / steps:.2f} ms per step")


if __name__ == "__main__":
    fire.Fire(main)
