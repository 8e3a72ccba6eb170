"""The Trainer: epochs and phases, limit flags, evaluation cadence, checkpoint/resume, seeds, devices, AMP,
logging (tqdm, TensorBoard, wandb) and ``results.json``. Methods (methods/) do the per-batch updates and tasks
(tasks.py) provide data and networks, so new methods and tasks plug in without touching this loop."""
from __future__ import annotations

import math
import platform
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import torch
from munch import Munch
from tqdm import tqdm

from datasets.tensor_loader import Batch
from evaluator import CellAccuracy, evaluate
from methods.base import Method, Phase
from tasks.base import Task
from utils.config import resolve_limit
from utils.distributed import any_process, is_distributed, is_main_process, memory_format_for, world_size
from utils.io import atomic_torch_save, atomic_write_json, json_plain
from utils.run_logger import RunLogger
from utils.seed import for_seed, rng_states, seed_key, set_rng_states

CHECKPOINT_NAME = "last.pth"
BEST_CHECKPOINT_NAME = "best.pth"
CHECKPOINT_FORMAT = 1
PHASE_EPOCH_STRIDE = 1_000_000
POSTFIX_EVERY = 10


class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM arrived; a checkpoint was saved and the run can be resumed."""


def autocast_factory(device: torch.device, amp: str) -> Any:
    """A zero-argument callable returning the autocast context for ``--amp none|bf16``."""
    if amp == "none":
        return nullcontext
    if amp == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"--amp must be 'none' or 'bf16', got {amp!r}")


def summarise(task: Task, cells: dict[str, dict[str, CellAccuracy]]) -> dict[str, dict[str, float]]:
    """``{predictor: {metric: value}}``: each loader's headline metric (named after the loader) and its extras."""
    summary: dict[str, dict[str, float]] = {}
    for loader_name, per_predictor in cells.items():
        for predictor, cell in per_predictor.items():
            metrics = summary.setdefault(predictor, {})
            metrics[loader_name] = task.metric(loader_name, cell)
            metrics.update(task.extra_metrics(loader_name, cell))
    return summary


def run_identity(task: Any, method: Any) -> dict[str, Any]:
    """What a checkpoint's ``meta`` records of the run that wrote it, and a resume must match: its task and
    method, and the data's fingerprint where the task has one (a folder dataset: the same flags may name other
    data)."""
    identity = {"task": task.name, "method": method.name}
    fingerprint = task.data_fingerprint()
    if fingerprint is not None:
        identity["data_fingerprint"] = fingerprint
    return identity


@dataclass
class ResumePoint:
    """A checkpoint to continue from, loaded on the CPU and checked to fit the run (experiment.resume_point and
    experiment.require_resume_fits), and the file it came from."""

    path: Path
    checkpoint: dict[str, Any]


@dataclass
class TrainerState:
    """Progress saved in every checkpoint: where training stands and what it has measured so far. ``wall_seconds``
    sums the ``segments``, one per process that trained the run (its start, host, seconds and steps), up to the
    last checkpoint each wrote (older checkpoints have a ``wall_seconds`` without segments)."""

    phase_index: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    global_step: int = 0
    train_seconds: float = 0.0
    data_seconds: float = 0.0
    train_images: int = 0
    wall_seconds: float = 0.0
    segments: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    epoch_loss_sums: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Trains ``method`` on ``task`` and writes ``config.json``, ``last.pth`` and ``results.json`` into ``run_dir``."""

    def __init__(self, config: Munch, task: Task, method: Method, run_dir: Path, device: torch.device,
                 autocast: Any = nullcontext):
        self.config = config
        self.task = task
        self.method = method
        self.run_dir = Path(run_dir)
        self.device = device
        self.autocast = autocast
        self.state = TrainerState()
        self.logger: RunLogger | None = None
        self._epoch_train_means: dict[str, float] = {}
        self._stop_signal: int | None = None
        self._session_start = 0.0
        self._wall_seconds_before = 0.0

    # ------------------------------------------------------------------------------------------- public
    @staticmethod
    def results_paths(config: Munch) -> list[Path]:
        """The ``results.json`` files a run with ``config`` writes."""
        return [Path(config.save_dir) / config.run_name / "results.json"]

    @classmethod
    def run_dirs(cls, config: Munch) -> list[Path]:
        """Every directory a run with ``config`` writes into (its checkpoints' and its results')."""
        return list(dict.fromkeys([Path(config.save_dir) / config.run_name,
                                   *(path.parent for path in cls.results_paths(config))]))

    def fit(self, resume_from: ResumePoint | None = None) -> dict[str, Any]:
        """Run every phase of the method (continuing from ``resume_from``, a checkpoint checked to fit this run,
        if given), then write and return ``results.json``'s content."""
        main_process = is_main_process()
        if main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(json_plain(dict(self.config)), self.run_dir / "config.json")
        if resume_from is not None:
            self._restore(resume_from.checkpoint)
        self.logger = RunLogger(self.run_dir, self.config.run_name, self.config,
                                self.config.tensorboard and main_process, self.config.wandb and main_process,
                                self.config.wandb_project, quiet=not main_process)
        self._start_segment()
        previous_handlers = self._install_signal_handlers()
        try:
            self._run_phases()
            final = self._final_evaluation()
        finally:
            self._restore_signal_handlers(previous_handlers)
            self._account_wall_clock()
            self.logger.close()
        results = self._results(final)
        if main_process:
            self._write_results(results)
        return results

    # ---------------------------------------------------------------------------------------- the loop
    def _run_phases(self) -> None:
        for phase_index, phase in enumerate(self.method.phases()):
            if phase_index < self.state.phase_index:
                continue
            first_epoch = self.state.epoch if phase_index == self.state.phase_index else 0
            for epoch in range(first_epoch, phase.epochs):
                self._train_epoch(phase_index, phase, epoch)
                self.method.end_epoch(phase, self.task.train_loader)
                self.state.phase_index, self.state.epoch = phase_index, epoch + 1
                if (epoch + 1) % self.config.val_epoch_step == 0 or epoch + 1 == phase.epochs:
                    self._evaluate_and_log(phase, epoch)
                if epoch + 1 < phase.epochs:
                    self.method.between_epochs(phase, self.task.train_loader)
                self._save_checkpoint(self.run_dir / CHECKPOINT_NAME)
                if self._stop_requested():
                    raise TrainingInterrupted(f"stopped by signal {self._stop_signal} after {phase.name} epoch "
                                              f"{epoch + 1}; checkpoint saved, resume with --resume")

    def _batch_stream(self, phase_index: int, first_step: int) -> Iterator[Batch]:
        """Batches from phase step ``first_step`` on. Step s of a phase is batch ``s mod L`` of pass ``s div L`` over
        the training loader (L = its length after ``--limit_train_batches``), and a pass's order depends on
        (seed, phase, pass) only: a resumed run sees exactly the batches of an uninterrupted one."""
        loader = self.task.train_loader
        passes_length = resolve_limit(self.config.limit_train_batches, len(loader))
        pass_index, skip = divmod(first_step, passes_length)
        while True:
            loader.set_epoch(phase_index * PHASE_EPOCH_STRIDE + pass_index)
            batches = iter(loader)
            for _ in range(skip):
                next(batches)
            for _ in range(passes_length - skip):
                yield next(batches)
            pass_index, skip = pass_index + 1, 0

    def _steps_in_epoch(self, phase: Phase, epoch: int) -> int:
        """Steps of epoch ``epoch`` of ``phase``: the phase's own (step-based) or one pass over the limited loader."""
        steps = phase.steps_in_epoch(epoch)
        return steps if steps is not None else resolve_limit(self.config.limit_train_batches,
                                                             len(self.task.train_loader))

    def _train_epoch(self, phase_index: int, phase: Phase, epoch: int) -> None:
        """One epoch (or its remainder after a mid-epoch resume): the epoch's steps of the phase, by default one pass
        over the (limited) training loader. Every epoch but a step-based phase's last has the length of the first."""
        state = self.state
        state.phase_index, state.epoch = phase_index, epoch
        n_steps = self._steps_in_epoch(phase, epoch)
        first = state.batch_in_epoch
        batches = self._batch_stream(phase_index, epoch * self._steps_in_epoch(phase, 0) + first)
        self.method.train()
        bar = tqdm(total=n_steps, initial=first, desc=f"{phase.name} {epoch + 1}/{phase.epochs}", unit="step",
                   disable=not (self.config.progress and is_main_process()), leave=False, dynamic_ncols=True)
        epoch_start = mark = time.perf_counter()
        data_seconds, images = 0.0, 0
        accounted_data, accounted_images = 0.0, 0
        loss_sums: dict[str, Any] = dict(state.epoch_loss_sums)
        every = self.config.checkpoint_every_steps

        def account() -> float:
            """Move the time, data time and images since the last call into the state; the epoch's seconds."""
            nonlocal mark, accounted_data, accounted_images
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            state.train_seconds += now - mark
            state.data_seconds += data_seconds - accounted_data
            state.train_images += images - accounted_images
            mark, accounted_data, accounted_images = now, data_seconds, images
            return now - epoch_start

        def save_mid_epoch() -> None:
            nonlocal mark
            account()
            state.epoch_loss_sums = {key: float(value) for key, value in loss_sums.items()}
            self._save_checkpoint(self.run_dir / CHECKPOINT_NAME)
            mark = time.perf_counter()

        for step in range(first, n_steps):
            fetch_start = time.perf_counter()
            batch = next(batches)
            if self.config.channels_last:
                batch = batch._replace(x=batch.x.contiguous(memory_format=memory_format_for(batch.x.dim())))
            data_seconds += time.perf_counter() - fetch_start
            logs = self.method.training_step(batch, phase)
            for key, value in logs.items():
                loss_sums[key] = loss_sums[key] + value if key in loss_sums else value
            state.global_step += 1
            state.batch_in_epoch = step + 1
            images += batch.target.numel()
            if step % POSTFIX_EVERY == 0 or step == n_steps - 1:
                values = self._check_finite(logs, phase)
                speed = images / max(time.perf_counter() - epoch_start, 1e-9)
                loss = next((values[key] for key in ("f_loss", "loss", "g_loss") if key in values), math.nan)
                bar.set_postfix(loss=loss, hsic=values.get("f_outer_g_0", math.nan), img_s=f"{speed:.0f}",
                                refresh=False)
                self.logger.scalars(phase.name, values, state.global_step)
            bar.update(1)
            if every and state.global_step % every == 0 and step + 1 < n_steps:
                save_mid_epoch()
            check_stop = not is_distributed() or step % POSTFIX_EVERY == 0
            if check_stop and self._stop_requested() and step + 1 < n_steps:
                bar.close()
                save_mid_epoch()
                raise TrainingInterrupted(f"stopped by signal {self._stop_signal} at {phase.name} epoch {epoch + 1}, "
                                          f"step {step + 1}/{n_steps}; checkpoint saved, resume with --resume")
        bar.close()
        seconds = account()
        self._epoch_train_means = {key: float(value) / n_steps for key, value in loss_sums.items()}
        state.batch_in_epoch, state.epoch_loss_sums = 0, {}
        self.logger.info(f"[{phase.name} {epoch + 1}/{phase.epochs}] {images / max(seconds, 1e-9):.1f} img/s, "
                         f"data {100 * data_seconds / max(seconds, 1e-9):.2f}% of the time")

    def _check_finite(self, logs: dict[str, torch.Tensor], phase: Phase) -> dict[str, float]:
        values = dict(zip(logs, torch.stack([value.float() for value in logs.values()]).tolist()))
        bad = [key for key, value in values.items() if not math.isfinite(value)]
        if any_process(bool(bad), self.device):
            path = self.run_dir / f"nonfinite_step{self.state.global_step}.pth"
            self._save_checkpoint(path)
            raise NonFiniteLossError(
                f"non-finite loss at step {self.state.global_step} ({phase.name}): "
                + ", ".join(f"{key}={values[key]}" for key in bad)
                + f"; state saved to {path}, last good checkpoint {self.run_dir / CHECKPOINT_NAME}")
        return values

    # ------------------------------------------------------------------------------------------ evaluation
    def _evaluate(self) -> dict[str, dict[str, CellAccuracy]]:
        return evaluate(self.method.predictors(), self.task.eval_loaders, self.task.num_classes,
                        self.task.num_biases, limit_batches=self.config.limit_eval_batches, autocast=self.autocast())

    def _evaluate_and_log(self, phase: Phase, epoch: int) -> dict[str, Any]:
        cells = self._evaluate()
        summary = summarise(self.task, cells)
        record = {"phase": phase.name, "epoch": epoch + 1, "step": self.state.global_step, "metrics": summary,
                  "train": self._epoch_train_means, **self.method.learning_rates()}
        self.state.history.append(record)
        for predictor, metrics in summary.items():
            self.logger.scalars(f"val_{predictor}", metrics, self.state.global_step)
        text = "  ".join(f"{p}: " + " ".join(f"{k}={v:.2f}" for k, v in m.items()) for p, m in summary.items())
        self.logger.info(f"[{phase.name} {epoch + 1}/{phase.epochs}] {text}")
        self._update_best(record)
        return {"cells": cells, "summary": summary}

    def _update_best(self, record: dict[str, Any]) -> None:
        """Keep the evaluation with the highest selection metric (ties go to the later one, as in DisEnt) and save
        its checkpoint as ``best.pth``."""
        if self.task.selection is None:
            return
        loader, predictor = self.task.selection
        value = record["metrics"][predictor][loader]
        if self.state.best is None or value >= self.state.best["value"]:
            self.state.best = {"value": value, "by": f"{loader}/{predictor}", "phase": record["phase"],
                               "epoch": record["epoch"], "step": record["step"], "metrics": record["metrics"]}
            self._save_checkpoint(self.run_dir / BEST_CHECKPOINT_NAME)

    def _final_evaluation(self) -> dict[str, Any]:
        cells = self._evaluate()
        return {"cells": cells, "summary": summarise(self.task, cells)}

    # ----------------------------------------------------------------------------------------- results
    def _results(self, final: dict[str, Any]) -> dict[str, Any]:
        return self._run_results(self.task, final["summary"], final["cells"], self.state.history, self.config,
                                 self.method.results_fields())

    def _write_results(self, results: dict[str, Any]) -> None:
        atomic_write_json(results, self.run_dir / "results.json")

    def _run_results(self, task: Task, summary: dict[str, dict[str, float]],
                     cells: dict[str, dict[str, CellAccuracy]], history: list[dict[str, Any]], config: Munch,
                     method_fields: dict[str, Any]) -> dict[str, Any]:
        """The content of one run's ``results.json``; its ``protocol`` (utils/protocol.py) says how much of the
        paper's protocol the run trained (epochs of the last phase, or steps) and whether it is paper-length."""
        from utils.protocol import run_protocol

        state = self.state
        phases = self.method.phases()
        task_fields = task.results_fields()
        last_phase_epochs = state.epoch if phases and state.phase_index == len(phases) - 1 else 0
        return {
            "task": task.name,
            "method": self.method.name,
            **task_fields,
            "seed": config.seed,
            "epoch": phases[-1].epochs if phases else 0,
            "protocol": run_protocol(task.name, config, epochs=last_phase_epochs, steps=state.global_step,
                                     world_size=world_size(), data_variant=task_fields.get("data_variant")),
            "metrics": state.best["metrics"]["f"] if state.best else summary["f"],
            "final_metrics": summary["f"],
            "selected": ({key: state.best[key] for key in ("by", "phase", "epoch", "step", "value")}
                         if state.best else "final"),
            "g_metrics": [summary[name] for name in sorted(summary) if name.startswith("g_")],
            "per_cell_accuracy": {loader: per_predictor["f"].per_cell() for loader, per_predictor in cells.items()},
            "predictor_metrics": summary,
            **method_fields,
            "wall_seconds": state.wall_seconds,
            "segments": state.segments,
            "train_images_per_second": (world_size() * state.train_images / state.train_seconds
                                        if state.train_seconds else None),
            "world_size": world_size(),
            "data_loading_fraction": state.data_seconds / state.train_seconds if state.train_seconds else None,
            "train_images": state.train_images,
            "global_step": state.global_step,
            "history": history,
            "device": str(self.device) if self.device.type != "cuda" else torch.cuda.get_device_name(self.device),
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "config": dict(config),
        }

    # -------------------------------------------------------------------------------------- checkpoints
    def _meta(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, **run_identity(self.task, self.method), "run_name": self.config.run_name}

    def _save_checkpoint(self, path: Path) -> None:
        if not is_main_process():
            return
        self._account_wall_clock()
        atomic_torch_save({"meta": self._meta(), "trainer": asdict(self.state), "method": self.method.state_dict(),
                           "rng": rng_states(), "config": json_plain(dict(self.config))}, path)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint loaded on the CPU: the method moves its tensors to its device (modules and
        optimisers copy or cast them), the RNG states stay on the CPU, where torch needs them."""
        self.method.load_state_dict(checkpoint["method"])
        self.state = TrainerState(**checkpoint["trainer"])
        set_rng_states(checkpoint["rng"])

    # ---------------------------------------------------------------------------------------- wall clock
    def _start_segment(self) -> None:
        """Open this process' segment of the run's wall-clock time."""
        self._session_start = time.perf_counter()
        self._wall_seconds_before = self.state.wall_seconds
        self.state.segments.append({"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                    "seconds": 0.0, "host": platform.node(), "first_step": self.state.global_step,
                                    "last_step": self.state.global_step})

    def _account_wall_clock(self) -> None:
        """Bring this process' segment and the run's ``wall_seconds`` up to now."""
        if not self.state.segments:
            return
        seconds = time.perf_counter() - self._session_start
        self.state.segments[-1].update(seconds=seconds, last_step=self.state.global_step)
        self.state.wall_seconds = self._wall_seconds_before + seconds

    # ------------------------------------------------------------------------------------------ signals
    def _stop_requested(self) -> bool:
        """Whether SIGINT/SIGTERM reached any process (all processes must agree to stop at the same step)."""
        return any_process(self._stop_signal is not None, self.device)

    def _install_signal_handlers(self) -> dict[int, Any]:
        def request_stop(signum: int, _frame: Any) -> None:
            self._stop_signal = signum

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[signum] = signal.signal(signum, request_stop)
            except ValueError:
                pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class SeedStackedTrainer(Trainer):
    """The Trainer of a ``--seeds`` run (methods/rebias_seeds.py): one training loop and one checkpoint
    (``run_dir/last.pth``) for all seeds, evaluation per seed on that seed's own evaluation sets, and per seed the
    ``config.json`` and ``results.json`` a separate run would write, in ``SAVE_DIR/<config.seed_run_names[k]>``.
    ``run_dir/summary.json`` lists them."""

    @staticmethod
    def results_paths(config: Munch) -> list[Path]:
        return [Path(config.save_dir) / name / "results.json" for name in config.seed_run_names]

    def _evaluate(self) -> dict[str, dict[str, CellAccuracy]]:
        cells: dict[str, dict[str, CellAccuracy]] = {}
        for index, (seed, seed_task) in enumerate(zip(self.config.seeds, self.task.seed_tasks, strict=True)):
            per_seed = evaluate(self.method.seed_predictors(index), seed_task.eval_loaders, self.task.num_classes,
                                self.task.num_biases, limit_batches=self.config.limit_eval_batches,
                                autocast=self.autocast())
            for loader_name, per_predictor in per_seed.items():
                cells.setdefault(loader_name, {}).update(
                    {seed_key(name, seed): cell for name, cell in per_predictor.items()})
        return cells

    def _results(self, final: dict[str, Any]) -> dict[str, Any]:
        runs = []
        for index, (seed, seed_task) in enumerate(zip(self.config.seeds, self.task.seed_tasks, strict=True)):
            cells = {loader: for_seed(per_predictor, seed) for loader, per_predictor in final["cells"].items()}
            history = [{**record, "metrics": for_seed(record["metrics"], seed),
                        "train": for_seed(record["train"], seed)} for record in self.state.history]
            run = self._run_results(seed_task, for_seed(final["summary"], seed), cells, history, seed_task.config,
                                    self.method.seed_results_fields(index))
            runs.append({**run, "stacked_seeds": list(self.config.seeds)})
        return {"task": self.task.name, "method": self.method.name, "seeds": list(self.config.seeds),
                "run_dirs": [str(self.run_dir.parent / name) for name in self.config.seed_run_names],
                "wall_seconds": self.state.wall_seconds, "segments": self.state.segments, "runs": runs}

    def _write_results(self, results: dict[str, Any]) -> None:
        for run, run_dir in zip(results["runs"], results["run_dirs"], strict=True):
            Path(run_dir).mkdir(parents=True, exist_ok=True)
            atomic_write_json(run["config"], Path(run_dir) / "config.json")
            atomic_write_json(run, Path(run_dir) / "results.json")
        atomic_write_json({key: value for key, value in results.items() if key != "runs"},
                          self.run_dir / "summary.json")
