"""Running one claimed job: train to the largest T, evaluating and recording at every T.

The job resumes from the furthest checkpoint at or before the first T that is not recorded
yet, so a job reclaimed after its worker died (or extended with a larger T) continues where
it stopped. Checkpoints live in ``workdir/study-<database id>/job-<job id>`` and record their
provenance (study, job, config hash, scalelab version, git commit and dirty flag): a file is
resumed from only when all of it matches, so a study never trains on another study's weights
or on weights made by other code. Data order is a function of (seed, epoch) and the
augmentation generators' states (the device one for crops and flips, the host one for MixUp
weights) are checkpointed, so on the CPU a resumed run reproduces an uninterrupted one exactly.

As the authors' loader, an epoch is N // batch_size steps: the last partial batch is dropped
(Eq. 4 still counts C = FLOP(f)·3·N·T). Each step's loss is read back one step late, so the
host never waits for the device between steps.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from sqlalchemy import Engine

from scalelab.data import (
    TrainAugment,
    make_loader,
    pretraining_source,
    stratified_subset,
    to_model_input,
)
from scalelab.data.augment import CROP_RATIO
from scalelab.data.sources import check_labels
from scalelab.errors import DataError
from scalelab.flops import model_cost
from scalelab.grid import config_hash
from scalelab.models import build_model
from scalelab.reprobe import probe_missing, probe_record
from scalelab.store.identity import checkpoint_provenance, study_id
from scalelab.store.queue import Lease
from scalelab.store.results import (
    CheckpointMetrics,
    job_config,
    record_checkpoint,
    stored_checkpoints,
)
from scalelab.store.retry import with_retries
from scalelab.train import checkpoint
from scalelab.train.rng import generator_state, restore_generator
from scalelab.train.schedule import lr_factor
from scalelab.train.step import TrainStep, make_optimizer

Position = tuple[int, int]  # (epochs completed, batches done in the next epoch)


class Diverged(Exception):
    """The training loss became NaN or infinite."""


class Stopped(Exception):
    """Training stopped early on request (signal, time limit, lost lease); reason in args."""


@dataclass
class JobControl:
    """How the worker talks to a running job."""

    stop_reason: Callable[[], str | None]  # a reason to stop now (SIGTERM, time limit, ...)
    lease_lost: Callable[[], bool]
    # Called at every step, evaluation batch and probe batch (phase "alive": progress, nothing to
    # show): the worker renews the job's lease only while it is called.
    progress: Callable[[dict[str, Any]], None] = lambda info: None
    checkpoint_every_s: float = 600.0


@dataclass
class TrainState:
    """Everything needed to continue training bit-for-bit from a position."""

    position: Position = (0, 0)
    wall_seconds: float = 0.0  # training time only, evaluation excluded
    loss_sum: float = 0.0  # over the batches of the current epoch so far
    loss_count: int = 0
    last_epoch_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The last step's loss, still on the device: (batch index, () tensor), read one step late.
    pending_loss: tuple[int, torch.Tensor] | None = None


def _order_seed(seed: int) -> int:
    """The loader seed of a job: epoch e's order is drawn from (this + e), so seeds are spread
    apart for seed s, epoch e never to share an order with seed s + 1, epoch e - 1."""
    return seed * 1_000_003


class JobRunner:
    def __init__(
        self,
        engine: Engine,
        lease: Lease,
        *,
        device: torch.device,
        workdir: Path,
        lease_s: float,
        control: JobControl,
    ) -> None:
        self.engine = engine
        self.lease = lease
        self.device = device
        self.lease_s = lease_s
        self.control = control
        cfg = lease.config
        self.cfg = cfg
        self.train_cfg = cfg["train"]
        self.resolution = int(cfg["resolution"])
        self.classes = int(cfg["classes"])
        self.examples = int(cfg["examples"])
        self.seed = int(cfg["seed"])
        study = study_id(engine)
        # Absolute, so that stored paths resolve from any working directory.
        self.dir = workdir.resolve() / f"study-{study}" / f"job-{lease.job_id}"
        self.provenance = checkpoint_provenance(study, lease.job_id, config_hash(cfg))
        self.resumed_from: Path | None = None
        self.flops = model_cost(cfg["model"], self.classes, self.resolution).flops
        self.train_epochs = int(cfg.get("train_epochs", max(lease.epochs)))

        if self.train_cfg["compile"]:
            # A fresh compile cache per job: cached graphs of earlier jobs' models would count
            # towards the recompile limit, after which dynamo quietly runs eager.
            torch._dynamo.reset()
        tc = self.train_cfg
        # Jobs enqueued before these keys existed hold neither: they mean these values.
        self.precision = str(tc.get("precision", "tf32"))
        crop_ratio = tuple(tc.get("crop_ratio", CROP_RATIO))
        self.batch_size = int(tc["batch_size"])
        self.steps_per_epoch = self.examples // self.batch_size  # the last partial one dropped
        if self.steps_per_epoch == 0:
            raise DataError(
                f"N = {self.examples} makes no full batch of {self.batch_size} (the last partial "
                "batch is dropped, as the authors' loader does); lower [train] batch_size"
            )
        torch.manual_seed(self.seed)
        self.model = build_model(cfg["model"], self.classes, self.resolution).to(device)
        self.optimizer = make_optimizer(
            self.model, tc["optimizer"], tc["lr"], tc["weight_decay"], (tc["beta1"], tc["beta2"])
        )
        self.step = TrainStep(
            self.model,
            self.optimizer,
            device=device,
            accumulation_steps=int(tc["accumulation_steps"]),
            precision=self.precision,
            compile=bool(tc["compile"]),
        )
        self.source = pretraining_source(cfg["dataset"], "train", self.resolution)
        self.subset = stratified_subset(self.source.labels, self.examples, self.seed)
        self.heldout = pretraining_source(cfg["dataset"], "heldout", self.resolution)
        for split in (self.source, self.heldout):
            check_labels(split, self.classes)
        n_held = min(int(tc["heldout_examples"]), len(self.heldout))
        self.heldout_idx = stratified_subset(self.heldout.labels, n_held, 0)
        self.crop = (tuple(tc["crop_scale"]), crop_ratio)  # FFCV takes it on an aspect beton
        self.augment = TrainAugment(
            self.classes,
            self.source.mean,
            self.source.std,
            self.resolution,
            flip=bool(tc["flip"]),
            crop_scale=tuple(tc["crop_scale"]),
            crop_ratio=crop_ratio,
            mixup=float(tc["mixup"]),
            label_smoothing=float(tc["label_smoothing"]),
        )
        self.generator = torch.Generator(device=device)  # crops, flips, MixUp pairs
        self.generator.manual_seed(self.seed)
        self.host_generator = torch.Generator().manual_seed(self.seed)  # MixUp weights
        self._train_loader: Any = None  # built on the first epoch trained, kept for the job
        self._heldout_loader: Any = None

    # ── checkpoints ──────────────────────────────────────────────────────────────────────

    def _path(self, position: Position) -> Path:
        epochs, batches = position
        return self.dir / ("latest.pt" if batches else f"T{epochs}.pt")

    def _save(self, state: TrainState, path: Path) -> None:
        self._settle(state)  # the saved position's losses are all counted
        checkpoint.save_atomic(
            {
                "config": self.cfg,
                "provenance": self.provenance,
                "precision": self.precision,
                "steps_per_epoch": self.steps_per_epoch,
                "position": list(state.position),
                "wall_seconds": state.wall_seconds,
                "loss_sum": state.loss_sum,
                "loss_count": state.loss_count,
                "last_epoch_loss": state.last_epoch_loss,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                **generator_state(self.generator),
                "host_generator": self.host_generator.get_state(),  # a CPU one: any device
            },
            path,
        )

    def _resume(self, before: int) -> TrainState:
        """Load the furthest checkpoint at or before epoch `before`; a fresh state if none.

        A T checkpoint's position is in its name; latest.pt must be read to know its own, and
        is then kept rather than read (model and optimizer, often GBs) a second time. A
        checkpoint whose provenance differs from this job's is not used: training starts over.
        """
        states: dict[Position, Path | dict[str, Any]] = {
            (int(path.stem[1:]), 0): path for path in self.dir.glob("T*.pt")
        }
        latest = self.dir / "latest.pt"
        if latest.exists():
            loaded = checkpoint.load(latest)
            states.setdefault(tuple(loaded["position"]), loaded)
        usable = [pos for pos in states if pos <= (before, 0)]
        if not usable:
            return TrainState()
        position = max(usable)
        chosen = states[position]
        saved = checkpoint.load(chosen) if isinstance(chosen, Path) else chosen
        path = chosen if isinstance(chosen, Path) else latest
        mismatch = self._provenance_mismatch(saved.get("provenance"))
        if mismatch:
            print(
                f"job {self.lease.job_id}: not resuming from {path}: {mismatch}; "
                "training from scratch",
                file=sys.stderr,
                flush=True,
            )
            return TrainState()
        self.resumed_from = path
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        position = (int(saved["position"][0]), int(saved["position"][1]))
        if note := restore_generator(self.generator, saved, self.seed, position):
            print(note, file=sys.stderr, flush=True)
        if "host_generator" in saved:  # absent from checkpoints written before it existed
            self.host_generator.set_state(saved["host_generator"])
        return TrainState(
            position=position,
            wall_seconds=float(saved["wall_seconds"]),
            loss_sum=float(saved["loss_sum"]),
            loss_count=int(saved["loss_count"]),
            last_epoch_loss=saved["last_epoch_loss"],
        )

    def _provenance_mismatch(self, saved: dict[str, Any] | None) -> str | None:
        """Why a checkpoint with this provenance is not this job's to resume; None if it is."""
        if not saved:
            return "it records no provenance (written by an older scalelab)"
        for key, mine in self.provenance.items():
            if saved.get(key) != mine:
                return f"its {key} is {saved.get(key)!r}, this job's is {mine!r}"
        return None

    # ── evaluation ───────────────────────────────────────────────────────────────────────

    # no_grad, not inference_mode: FFCV's worker threads copy into buffers allocated on this
    # thread, and an inference tensor refuses that copy (FFCV swallows the error and hangs).
    @torch.no_grad()
    def _upstream(self) -> tuple[float, float]:
        """Held-out pretraining loss and top-1 error (no augmentation)."""
        self.model.eval()
        loss_sum = errors = 0.0
        if self._heldout_loader is None:  # kept for the job's later evaluations, as in training
            self._heldout_loader = make_loader(
                self.heldout,
                self.heldout_idx,
                1024,
                self.device,
                shuffle=False,
                seed=0,
                drop_last=False,
            )
        for x_u8, y in self._heldout_loader:
            x = to_model_input(x_u8, self.heldout.mean, self.heldout.std, self.resolution)
            logits, _ = self.model(x)  # (B, K)
            self.control.progress({"phase": "alive"})
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
            errors += (logits.argmax(dim=1) != y).sum().item()
        n = len(self.heldout_idx)
        return loss_sum / n, errors / n

    def _evaluate(self, state: TrainState) -> None:
        epochs = state.position[0]
        self.control.progress({"phase": "evaluate", "epoch": epochs})
        upstream_loss, upstream_error = self._upstream()
        probe_cfg = self.cfg["probe"]
        probes = [
            probe_record(
                self.model,
                target,
                method=probe_cfg["method"],
                settings=probe_cfg["settings"],
                config=self.cfg,
                device=self.device,
                alive=lambda: self.control.progress({"phase": "alive"}),
            )
            for target in probe_cfg["targets"]
        ]
        self.model.train()
        compute = float(self.flops) * 3 * self.examples * epochs
        metrics = CheckpointMetrics(
            epochs=float(epochs),
            flops=float(self.flops),
            compute=compute,
            wall_seconds=state.wall_seconds,
            achieved_flops_per_s=compute / state.wall_seconds if state.wall_seconds else None,
            train_loss=state.last_epoch_loss if epochs else None,
            upstream_loss=upstream_loss,
            upstream_error=upstream_error,
            path=str(self._path(state.position)),
        )
        # Through a database restart: the write replaces the T's row, so a retry is safe.
        with_retries(
            f"job {self.lease.job_id}: record T={epochs}",
            lambda _retried: record_checkpoint(
                self.engine,
                self.lease,
                metrics,
                probes,
                device=str(self.device),
                lease_s=self.lease_s,
            ),
            give_up_s=self.lease_s / 2,
        )

    # ── training ─────────────────────────────────────────────────────────────────────────

    def _check_stop(self, state: TrainState) -> None:
        if self.control.lease_lost():
            raise Stopped("lease lost")
        reason = self.control.stop_reason()
        if reason:
            self._save(state, self.dir / "latest.pt")
            raise Stopped(reason)

    def _settle(self, state: TrainState) -> float | None:
        """Read back the pending step's loss (waiting for it) and count it; None if none.

        Raises Diverged if it is NaN or infinite: the step after it has run by then, and
        nothing after it is saved.
        """
        if state.pending_loss is None:
            return None
        batch, tensor = state.pending_loss
        state.pending_loss = None
        loss = float(tensor)
        if not math.isfinite(loss):
            raise Diverged(
                f"loss became {loss} at epoch {state.position[0] + 1}, step {batch + 1}; "
                "lower the learning rate"
            )
        state.loss_sum += loss
        state.loss_count += 1
        return loss

    def _train_epoch(self, state: TrainState) -> None:
        epoch, skip = state.position
        tc = self.train_cfg
        if self._train_loader is None:  # one loader per job: FFCV compiles and checks it once
            self._train_loader = make_loader(
                self.source,
                self.subset,
                self.batch_size,
                self.device,
                shuffle=True,
                seed=_order_seed(self.seed),
                drop_last=True,
                crop=self.crop,
            )
        loader = self._train_loader
        loader.epoch = epoch  # the order is a function of (seed, epoch): resumes stay exact
        last_save = time.monotonic()
        for batch, (x_u8, y) in enumerate(loader):
            if batch < skip:  # resuming mid-epoch: the order is the same, skip what was done
                continue
            start = time.perf_counter()
            progress = epoch + batch / self.steps_per_epoch
            factor = lr_factor(progress, self.train_epochs, tc["schedule"], tc["warmup_epochs"])
            for group in self.optimizer.param_groups:
                group["lr"] = tc["lr"] * factor
            x, y_soft = self.augment(
                x_u8, y, self.generator, self.host_generator, crop=not loader.crops_done
            )
            loss = self.step(x, y_soft)  # () on the device; x (B, 3, R, R), y_soft (B, K)
            # Waits for the step before, not this one: with that wait inside each step's time,
            # the steps' times add up to the epoch's (no per-step synchronize needed).
            previous = self._settle(state)
            state.pending_loss = (batch, loss)
            elapsed = time.perf_counter() - start
            state.wall_seconds += elapsed
            state.position = (epoch, batch + 1)
            self.control.progress(
                {
                    "phase": "train",
                    "epoch": epoch + 1,
                    "epochs": self.train_epochs,
                    "batch": batch + 1,
                    "batches": self.steps_per_epoch,
                    "loss": previous,  # the step before's: this one is still running
                    "images_per_s": x.shape[0] / elapsed if elapsed else 0.0,
                }
            )
            self._check_stop(state)
            if time.monotonic() - last_save > self.control.checkpoint_every_s:
                self._save(state, self.dir / "latest.pt")
                last_save = time.monotonic()
        start = time.perf_counter()
        self._settle(state)  # waits for the epoch's last step, whose time is the epoch's too
        state.wall_seconds += time.perf_counter() - start
        state.last_epoch_loss = state.loss_sum / max(state.loss_count, 1)
        state.position, state.loss_sum, state.loss_count = (epoch + 1, 0), 0.0, 0

    def run(self) -> None:
        """Probe recorded T on targets they lack (queued probe work), then train and evaluate
        every T not recorded yet. Raises Diverged or Stopped."""
        probe_missing(
            self.engine,
            self.lease,
            device=self.device,
            lease_s=self.lease_s,
            progress=self.control.progress,
        )
        recorded = {c.epochs for c in stored_checkpoints(self.engine, self.lease.job_id)}
        pending = sorted(int(t) for t in self.lease.epochs if t not in recorded)
        if pending:
            self._train(pending)
        # A grid enqueued while this job ran may have added probe work to it (enqueue requeues
        # only finished jobs): do that too before the job is marked done.
        config = job_config(self.engine, self.lease.job_id)
        if config.get("probe") != self.cfg.get("probe"):
            probe_missing(
                self.engine,
                dataclasses.replace(self.lease, config=config),
                device=self.device,
                lease_s=self.lease_s,
                progress=self.control.progress,
            )

    def _train(self, pending: list[int]) -> None:
        """Train from the best usable checkpoint, evaluating at each T of ``pending``."""
        state = self._resume(pending[0])
        evaluated = {int(t) for t in self.lease.epochs}
        saved: Position | None = None
        while pending:
            epochs, batches = state.position
            if batches == 0 and epochs in evaluated and state.position != saved:
                # Every evaluated T keeps this run's weights: a stale file of the name (from a
                # run that was not resumed) is replaced, so a stored path never lies.
                path = self.dir / f"T{epochs}.pt"
                if path != self.resumed_from:
                    self._save(state, path)
                saved = state.position
            if batches == 0 and epochs in pending:
                self._evaluate(state)
                pending.remove(epochs)
                continue
            self._train_epoch(state)
            self._save(state, self.dir / "latest.pt")
