"""The training loop: L1 warm start, then conditional GAN + lambda * L1, with an EMA generator.

Resume is a first-class path: the batch order and augmentation are functions of (seed, step),
and the checkpoint holds every other piece of state, so a killed run continues as if never
stopped.
"""

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from colorful_world.core import runtime as rt
from colorful_world.nets.checkpoint import checkpoint_path, prune_checkpoints, save_checkpoint
from colorful_world.core.color import chroma_deficit, model_to_rgb
from colorful_world.core.config import MODEL_FORMAT, TrainConfig, data_shares
from colorful_world.core.data import Batch, BatchStream, DataError, Splits, load_splits
from colorful_world.core.metrics import mean_ab, score
from colorful_world.nets.models import count_parameters
from colorful_world.nets.model_file import EXPORT_NAME, export_generator
from colorful_world.io.errors import UserError
from colorful_world.io.paths import decoded_cache_dir, on_colab
from colorful_world.nets.predict import hints_for_gain, predict_ab
from colorful_world.core.report import METRICS, plot_metrics, provenance, save_samples
from colorful_world.training.run_folder import MetricsLog, locked, open_run, run_dir
from colorful_world.training.state import TrainingState, model_gain, train_network_modes, update_ema


VAL_HINTS = 10  # clicks per photo in the validation with hints
MAX_SKIPS_IN_A_ROW = 50  # inf/NaN steps in a row before a run is declared diverged


class TrainingDiverged(UserError):
    """Losses or gradients stayed inf or NaN: going on would only waste the machine."""


GAN_LOSSES = {"vanilla": F.binary_cross_entropy_with_logits, "lsgan": F.mse_loss}  # keys: config.GAN_MODES (tested)


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return GAN_LOSSES[mode](logits.float(), target)


def pixel_loss(kind: str, l1, fake, ab, l_norm, rgb) -> torch.Tensor:
    """The per-pixel loss named by config.pixel_loss. L1 is minimised by the median colour,
    squared errors by the mean, the one PSNR rewards; on the sRGB photo they weigh each error as
    PSNR does (a colour error counts less in the shadows, where it changes fewer RGB levels)."""
    if kind == "mse":
        return F.mse_loss(fake.float(), ab)
    if kind == "rgb_mse":
        return F.mse_loss(model_to_rgb(l_norm, fake), rgb.float())
    return l1


def _finite(*losses: torch.Tensor) -> bool:
    return all(torch.isfinite(loss).item() for loss in losses)


def train_step(batch: Batch, G, D, opt_g, opt_d, scaler, config: TrainConfig, gan_phase: bool,
               runtime: rt.Runtime, gain: float = 1.0):
    """One optimisation step on a batch; returns the losses, and "skipped": 1.0 when a loss or
    (under fp16) a gradient was inf or NaN and nothing moved. `gain`: the chroma gain the
    generator's colour is scored under (model_gain)."""
    rgb, l_norm, ab, l_input = batch.rgb, batch.l_norm, batch.ab, batch.l_input
    if runtime.device.type == "cuda":
        l_norm = l_norm.contiguous(memory_format=torch.channels_last)
        l_input = l_input.contiguous(memory_format=torch.channels_last)
    with runtime.autocast():
        fake = (G(l_input) if batch.hints is None else G(l_input, hints_for_gain(batch.hints, gain))) * gain
    l1 = F.l1_loss(fake.float(), ab)
    # L1 alone is minimised by a cautious, desaturated colour (the sepia look); the chroma term
    # holds each pixel's saturation up to the truth's without choosing the hue for it.
    chroma = chroma_deficit(fake.float(), ab)
    pixel = pixel_loss(config.pixel_loss, l1, fake, ab, l_norm, rgb) + config.chroma_weight * chroma
    logs = {"l1": l1.item(), "chroma": chroma.item(), "skipped": 0.0}
    scale = scaler.get_scale() if scaler.is_enabled() else None
    # A non-finite loss comes from the forward pass, where the loss scale plays no part: the step
    # is dropped before any weight moves. Overflowing gradients are the scaler's to skip.
    if not _finite(pixel):
        return logs | {"skipped": 1.0}
    if gan_phase:
        # D: real and fake in one call (one DDP forward per backward); InstanceNorm keeps them apart.
        with runtime.autocast():
            logits = D(torch.cat([l_norm, l_norm]), torch.cat([fake.detach(), ab.to(fake.dtype)]))
        fake_logits, real_logits = logits.chunk(2)
        loss_d = 0.5 * (gan_loss(fake_logits, False, config.gan_mode) + gan_loss(real_logits, True, config.gan_mode))
        if not _finite(loss_d):
            return logs | {"loss_d": loss_d.item(), "skipped": 1.0}
        opt_d.zero_grad(set_to_none=True)
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)
        # G: fool D, stay close to the truth. The bare D with frozen weights: gradients flow to
        # G only, and DDP has nothing of D's to synchronise (its weights are equal on every rank).
        bare_d = D.module if isinstance(D, DDP) else D
        bare_d.requires_grad_(False)
        with runtime.autocast():
            adversarial = gan_loss(bare_d(l_norm, fake), True, config.gan_mode)
        loss_g = adversarial + config.lambda_l1 * pixel
        logs.update(loss_d=loss_d.item(), adversarial=adversarial.item())
    else:
        loss_g = pixel
    opt_g.zero_grad(set_to_none=True)
    scaler.scale(loss_g).backward()
    scaler.step(opt_g)  # under fp16, skipped by the scaler when a gradient overflowed
    scaler.update()
    if gan_phase:
        bare_d.requires_grad_(True)
    if not _finite(loss_g) or (scale is not None and scaler.get_scale() < scale):  # the scaler backed off
        logs["skipped"] = 1.0
    return logs


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Constant, then (with --lr-decay-epochs N) linearly down to 0 over the last N epochs."""
    total, decay = config.epochs * steps_per_epoch, config.lr_decay_epochs * steps_per_epoch
    return config.lr * min(1.0, (total - step) / decay) if decay else config.lr


def staging_dir() -> Path | None:
    """On Colab, checkpoints are written to local disk first and then copied to Drive, whose
    FUSE mount is slow and may drop a file written during a disconnect."""
    return decoded_cache_dir() / "staging" if on_colab() else None


def train(settings: dict | TrainConfig, fresh: bool = False, progress: bool = True,
          on_record: Callable[[dict], None] | None = None) -> Path:
    """Train a colorizer, or continue its run: the same settings again continue where the last
    checkpoint left off (run_folder.open_run has the rule). Returns the exported model's path.

    `settings`: the train options given, by name (or a whole TrainConfig). `on_record` sees every
    line written to metrics.jsonl as it is written (a notebook draws its live plot from them).
    """
    if isinstance(settings, TrainConfig):
        settings = asdict(settings)
    first_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun, one lock for the job
    with locked(run_dir(settings.get("out", ""))) if first_rank else contextlib.nullcontext():
        config, saved, resumed_from = open_run(settings, fresh)
        config.validate()
        runtime = rt.setup(config.precision)
        try:
            return _train(config, saved, resumed_from, runtime, progress, on_record)
        finally:
            rt.teardown(runtime)


def _train(config: TrainConfig, saved: dict | None, resumed_from: Path | None, runtime: rt.Runtime,
           progress: bool, on_record: Callable[[dict], None] | None) -> Path:
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    say = print if runtime.is_main else (lambda *a, **k: None)
    torch.manual_seed(config.seed)
    splits = _load_data(config, runtime, progress, say)
    run_config = asdict(config) | {"mean_ab": mean_ab(splits.train), "format": MODEL_FORMAT}
    gain = model_gain(config)
    if config.hints_only:  # the model keeps its colour, and the gain its hints were trained under
        run_config["chroma_gain"] = gain
    say(f"precision: {runtime.precision_reason}")
    state = TrainingState(config, runtime, pretrained=saved is None)
    say(f"generator: {count_parameters(state.G):,} parameters; discriminator: {count_parameters(state.D):,}")
    if saved is not None:
        state.load_state_dict(saved)
        say(f"resumed from {resumed_from} at step {state.step}")
    log = StepLog(_open_metrics(out, splits, runtime, saved is None, state.step, on_record), runtime, state.step)
    steps_per_epoch = len(splits.train) // (config.batch_size * runtime.world_size)
    if steps_per_epoch == 0:
        raise DataError(f"{len(splits.train)} training photos is less than one batch of "
                        f"{config.batch_size} x {runtime.world_size} processes")
    total, first_step = steps_per_epoch * config.epochs, state.step
    clock = Clock(config, runtime, state.elapsed)

    def save() -> None:
        clock.saved()
        if runtime.is_main:
            save_checkpoint(state.state_dict(run_config, steps_per_epoch, clock.elapsed()),
                            checkpoint_path(out, state.step), staging=staging_dir())
            prune_checkpoints(out, config.keep_checkpoints)
        rt.barrier(runtime)

    G, D = (DDP(m) if runtime.distributed else m for m in (state.G, state.D))
    train_network_modes(state.G, config), D.train()
    # --data-on-device: the uint8 cache lives on the GPU (a quarter of float32), crops happen there.
    images = splits.train.to(runtime.device) if config.data_on_device else splits.train
    batches = BatchStream(images, config, steps_per_epoch, runtime.rank, runtime.world_size, runtime.device,
                          splits.counts(), data_shares(config.data_weights, config.sources()))
    with rt.GracefulStop(enabled=not runtime.distributed) as stop, contextlib.closing(batches), \
            tqdm(total=total, initial=state.step, desc="training", dynamic_ncols=True,
                 disable=not (progress and runtime.is_main)) as bar:
        while state.step < total and not clock.out_of_time():
            epoch = state.step // steps_per_epoch
            gan_phase = epoch >= config.l1_epochs
            for group in (*state.opt_g.param_groups, *state.opt_d.param_groups):  # by the step: resumes exactly
                group["lr"] = learning_rate(config, state.step, steps_per_epoch) * group.get("lr_scale", 1.0)
            batch = log.waiting(batches.batch, state.step)
            logs = train_step(batch, G, D, state.opt_g, state.opt_d, state.scaler, config, gan_phase, runtime, gain)
            state.step += 1
            if log.stepped(logs, state.step, epoch, gan_phase, config.log_every, out):  # G moved: so does its average
                update_ema(state.ema, state.G, min(config.ema_decay, (1 + state.step) / (10 + state.step)))
            bar.update(1)
            bar.set_postfix(phase="gan" if gan_phase else "l1", **clock.left(), **{k: f"{v:.3f}" for k, v in logs.items()})
            if state.step % steps_per_epoch == 0:
                if runtime.is_main:
                    validate(state.ema, splits, runtime, out, epoch, state.step, log.metrics, gain, progress)
                save()
            elif state.step % config.save_every == 0 or stop.requested or clock.save_due():
                save()
            if stop.requested:
                raise KeyboardInterrupt(f"stopped at step {state.step}; the same command again continues it")
    if state.step < total:  # --max-minutes ran out mid-epoch: score and keep what there is
        say(f"--max-minutes {config.max_minutes:g} spent at step {state.step} of {total}: validating, saving and "
            "exporting what there is")
        if state.step % steps_per_epoch and state.step > first_step:  # not already scored and saved
            if runtime.is_main:
                validate(state.ema, splits, runtime, out, state.step // steps_per_epoch, state.step, log.metrics,
                         gain, progress)
            save()
    export = out / EXPORT_NAME
    if runtime.is_main:
        export_generator(state.ema.state_dict(), run_config, export, fp16=config.export_fp16,
                         provenance=provenance(out, run_config, state.step))
        say(f"exported the EMA generator to {export}")
    return export


def _load_data(config: TrainConfig, runtime: rt.Runtime, progress: bool, say) -> Splits:
    cache_dir = Path(config.cache_dir) if config.cache_dir else decoded_cache_dir()
    if not runtime.is_main:
        rt.barrier(runtime)  # rank 0 decodes the cache first; the others then read it
    splits = load_splits(config.data, config.image_size, config.val_fraction, config.seed,
                         config.min_colourfulness, cache_dir, config.max_images or None,
                         progress and runtime.is_main)
    if runtime.is_main:
        rt.barrier(runtime)
    scenes = f" (+{len(splits.val_scenes)} of the other sources, the scenes framing)" if splits.train_counts else ""
    per_source = f", {' + '.join(map(str, splits.train_counts))} by source" if splits.train_counts else ""
    say(f"data: {len(splits.train)} training{per_source} and {len(splits.val)} validation photos{scenes}; "
        f"{splits.dropped_grey} near-grey dropped, {len(splits.bad)} unreadable skipped")
    for line in splits.bad:
        say(f"  skipped {line}")
    return splits


def _open_metrics(out: Path, splits: Splits, runtime: rt.Runtime, new_run: bool, step: int,
                  on_record: Callable[[dict], None] | None) -> MetricsLog | None:
    """metrics.jsonl, cut back to `step` on a resume (rank 0 only); the data and precision lines."""
    if not runtime.is_main:
        return None
    metrics = MetricsLog(out / METRICS, None if new_run else step, on_record)
    if new_run:
        metrics.write({"kind": "data", "step": 0, "train": len(splits.train), "val": len(splits.val),
                       "train_by_source": splits.counts(),
                       "val_scenes": 0 if splits.val_scenes is None else len(splits.val_scenes),
                       "dropped_grey": splits.dropped_grey, "unreadable": splits.bad})
    metrics.write({"kind": "precision", "step": step, "device": str(runtime.device),
                   "amp_dtype": str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "float32",
                   "reason": runtime.precision_reason})
    return metrics


class Clock:
    """Training time, counted across resumes (--max-minutes), and the time since the last save
    (--save-every-minutes); every rank follows rank 0's."""

    def __init__(self, config: TrainConfig, runtime: rt.Runtime, elapsed_before: float):
        self.config, self.runtime = config, runtime
        self.started = time.perf_counter() - elapsed_before
        self.last_save = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def out_of_time(self) -> bool:
        limit = self.config.max_minutes
        return bool(limit) and rt.agree(self.elapsed() >= 60 * limit, self.runtime)

    def left(self) -> dict[str, str]:
        """The time --max-minutes leaves, for the progress bar (whose own ETA is to the last epoch)."""
        limit = self.config.max_minutes
        return {"stops_in": f"{max(0.0, limit - self.elapsed() / 60):.0f}min"} if limit else {}

    def save_due(self) -> bool:  # besides every save_every steps: a disconnect costs minutes, not an epoch
        every = self.config.save_every_minutes
        return bool(every) and rt.agree(time.perf_counter() - self.last_save >= 60 * every, self.runtime)

    def saved(self) -> None:
        self.last_save = time.perf_counter()


class StepLog:
    """The train lines of metrics.jsonl (seconds a step, data wait, skipped steps, losses), and
    the count of skipped steps in a row that declares a run diverged."""

    def __init__(self, metrics: MetricsLog | None, runtime: rt.Runtime, step: int):
        self.metrics, self.runtime = metrics, runtime
        self.tick, self.ticked, self.waited, self.skipped, self.in_a_row = time.perf_counter(), step, 0.0, 0, 0
        if runtime.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(runtime.device)

    def waiting(self, fetch: Callable, step: int):
        started = time.perf_counter()
        batch = fetch(step)
        self.waited += time.perf_counter() - started
        return batch

    def stepped(self, logs: dict, step: int, epoch: int, gan_phase: bool, every: int, out: Path) -> bool:
        """Count and log the step just taken; False when it was skipped (nothing moved)."""
        moved = not logs.pop("skipped")
        self.in_a_row = 0 if moved else self.in_a_row + 1
        self.skipped += not moved
        if self.in_a_row >= MAX_SKIPS_IN_A_ROW:
            raise TrainingDiverged(
                f"{self.in_a_row} steps in a row up to step {step} had inf or NaN losses or gradients; "
                f"nothing was saved from them, the last checkpoint in {out} is intact. Try "
                "--precision fp32 or a lower --lr.")
        if self.metrics and step % every == 0:
            elapsed = time.perf_counter() - self.tick
            record = {"kind": "train", "step": step, "epoch": epoch, "phase": "gan" if gan_phase else "l1",
                      "sec_per_step": elapsed / (step - self.ticked), "data_wait": self.waited / elapsed,
                      "skipped_steps": self.skipped, **logs}
            if self.runtime.device.type == "cuda":
                record["peak_memory_gb"] = torch.cuda.max_memory_allocated(self.runtime.device) / 1e9
                torch.cuda.reset_peak_memory_stats(self.runtime.device)
            self.metrics.write(record)
            self.tick, self.ticked, self.waited, self.skipped = time.perf_counter(), step, 0.0, 0
        return moved


def validate(ema, splits, runtime: rt.Runtime, out: Path, epoch: int, step: int, metrics: MetricsLog,
             gain: float = 1.0, progress: bool = False) -> dict:
    """Score the EMA generator, its colour scaled by `gain`, on the validation photos, whole,
    tightly cropped (figures prefixed crop_), as old prints (old_), for a model with hints with
    VAL_HINTS clicks, and with several sources on the other sources' photos (scenes_); write a
    sample grid and the plot. `progress`: a bar for each framing."""
    def bar(framing: str) -> str:
        return f"validating: {framing}" if progress else ""

    def predict(l_norm, hints=None):  # at the photos' own size, which is the training size: no resizing
        return predict_ab(ema, l_norm, l_norm.shape[-1], runtime, hints_for_gain(hints, gain)) * gain

    figures = score(predict, splits.val, runtime.device, progress=bar("whole"))
    figures |= {f"crop_{k}": v for k, v in score(predict, splits.val_crop, runtime.device,
                                                 progress=bar("tight crops")).items()}
    figures |= {f"old_{k}": v for k, v in score(predict, splits.val, runtime.device, old_print=True,
                                                progress=bar("old prints")).items()}
    if getattr(ema, "hints", False):
        figures |= {f"hints{VAL_HINTS}_{k}": v for k, v in score(predict, splits.val, runtime.device, hints=VAL_HINTS,
                                                                 progress=bar(f"{VAL_HINTS} hints")).items()}
    shown_photos = [splits.val, splits.val_crop]
    if splits.val_scenes is not None and len(splits.val_scenes):
        figures |= {f"scenes_{k}": v for k, v in score(predict, splits.val_scenes, runtime.device,
                                                       progress=bar("scenes")).items()}
        shown_photos.append(splits.val_scenes)
    samples = out / "samples" / f"epoch_{epoch + 1:03d}.png"
    save_samples(predict, torch.cat([_spread(photos, 4) for photos in shown_photos]), runtime.device, samples)
    metrics.write({"kind": "val", "step": step, "epoch": epoch, **figures, "samples": str(samples)})
    plot_metrics(out / METRICS, out / "metrics.png")
    shown = ("psnr", "delta_e2000", "colourfulness_ratio")
    framings = [p for p in ("", "crop_", "old_", f"hints{VAL_HINTS}_", "scenes_") if p + "psnr" in figures]
    tqdm.write(f"validation at step {step:,} (epoch {epoch + 1}): " + ", ".join(f"{p}{k} {figures[p + k]:.3f}" for p in framings for k in shown))
    return figures


def _spread(photos: torch.Tensor, count: int) -> torch.Tensor:
    """`count` photos from across a set (on LFW, of different people)."""
    return photos[torch.linspace(0, len(photos) - 1, min(count, len(photos))).long()]
