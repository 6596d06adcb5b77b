"""The training loop: L1 warm start, then conditional GAN + lambda * L1, with an EMA generator.

Resume is a first-class path: the batch order and augmentation are functions of (seed, step),
and the checkpoint holds every other piece of state, so a killed run continues as if never
stopped.
"""

import contextlib
import copy
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
from colorful_world.core.config import MODEL_FORMAT, ModelConfig, TrainConfig
from colorful_world.core.data import Batch, BatchStream, DataError, load_splits
from colorful_world.core.metrics import mean_ab, score
from colorful_world.nets.models import HINT_PARTS, EncoderUNet, PatchDiscriminator, build_generator, count_parameters
from colorful_world.nets.model_file import EXPORT_NAME, export_generator, load_model
from colorful_world.io.errors import ConfigError, UserError
from colorful_world.io.paths import decoded_cache_dir, on_colab
from colorful_world.nets.predict import predict_ab
from colorful_world.core.report import plot_metrics, save_samples
from colorful_world.training.run_folder import METRICS, MetricsLog, locked, open_run, provenance, run_dir


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


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """EMA of the weights; buffers (BatchNorm statistics) are copied as they are."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _finite(*losses: torch.Tensor) -> bool:
    return all(torch.isfinite(loss).item() for loss in losses)


def train_step(batch: Batch, G, D, opt_g, opt_d, scaler, config: TrainConfig, gan_phase: bool,
               runtime: rt.Runtime):
    """One optimisation step on a batch; returns the losses, and "skipped": 1.0 when a loss or
    (under fp16) a gradient was inf or NaN and nothing moved."""
    rgb, l_norm, ab, l_input = batch.rgb, batch.l_norm, batch.ab, batch.l_input
    if runtime.device.type == "cuda":
        l_norm = l_norm.contiguous(memory_format=torch.channels_last)
        l_input = l_input.contiguous(memory_format=torch.channels_last)
    with runtime.autocast():
        fake = G(l_input) if batch.hints is None else G(l_input, batch.hints)
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


def build_training(config: TrainConfig, runtime: rt.Runtime, pretrained: bool = True):
    """(G, D, their Adam optimizers, the grad scaler) as the config describes them, on the runtime's
    device (channels_last on CUDA); the scaler only works under fp16. `pretrained`: load the
    encoder's weights (a resumed run gets its own from the checkpoint instead)."""
    G = build_generator(config.model(), config.encoder_weights if pretrained and not config.init_from else "random")
    if pretrained and config.init_from:
        start_from(G, config)
    G = G.to(runtime.device)
    D = PatchDiscriminator(config.disc_channels, config.disc_layers).to(runtime.device)
    if runtime.device.type == "cuda":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    # The pretrained encoder may learn slower than the decoder, so that long training on faces
    # keeps more of what ImageNet taught it ("lr_scale" is read where the rate is set each step).
    # The hint inputs are new weights beside trained ones: they learn faster (--hint-lr).
    encoder = {id(p) for p in G.stages.parameters()} if isinstance(G, EncoderUNet) else set()
    hint = {id(p) for p in G.hint_parameters()} if getattr(G, "hints", False) else set()
    groups = [{"params": [p for p in G.parameters() if id(p) not in encoder | hint], "lr_scale": 1.0},
              {"params": [p for p in G.parameters() if id(p) in encoder], "lr_scale": config.encoder_lr},
              {"params": [p for p in G.parameters() if id(p) in hint], "lr_scale": config.hint_lr}]
    opt_g = torch.optim.Adam([g for g in groups if g["params"]], lr=config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp_dtype == torch.float16)
    return G, D, opt_g, opt_d, scaler


def start_from(G: torch.nn.Module, config: TrainConfig) -> None:
    """Fine-tuning: the generator of config.init_from ("bundled": the package's model) loaded
    into G; weights G has and the model lacks (hint inputs) keep their zero start."""
    state, saved, _ = load_model(None if config.init_from == "bundled" else config.init_from)
    mine = config.model()
    theirs = ModelConfig.from_dict(saved)
    if (theirs.arch, theirs.encoder, theirs.base_channels, theirs.max_channels, theirs.depth) != \
            (mine.arch, mine.encoder, mine.base_channels, mine.max_channels, mine.depth):
        raise ConfigError(f"--init-from {config.init_from}: its network ({theirs.arch}, {theirs.encoder or 'no encoder'}, "
                          f"width {theirs.base_channels}-{theirs.max_channels}) is not this run's; give the same "
                          "--arch, --encoder, --base-channels and --max-channels")
    missing, unexpected = G.load_state_dict(state, strict=False)
    if unexpected or any(not key.startswith(HINT_PARTS) for key in missing):
        raise ConfigError(f"--init-from {config.init_from}: its weights do not fit this network "
                          f"({len(missing)} missing, {len(unexpected)} unexpected)")


def _in_groups(saved: dict, optimizer: torch.optim.Optimizer, params: list) -> dict:
    """A generator's optimizer state saved with all its parameters in one group (as before
    --encoder-lr) arranged into `optimizer`'s groups, so that such a run still continues."""
    if len(saved["param_groups"]) != 1 or len(optimizer.param_groups) == 1:
        return saved
    old_index = {id(p): i for i, p in enumerate(params)}  # one group: indices in parameters() order
    state, groups, index = {}, [], 0
    for group in optimizer.param_groups:
        indices = []
        for p in group["params"]:
            if old_index[id(p)] in saved["state"]:
                state[index] = saved["state"][old_index[id(p)]]
            indices.append(index)
            index += 1
        groups.append(saved["param_groups"][0] | {"params": indices, "lr_scale": group["lr_scale"]})
    return {"state": state, "param_groups": groups}


def staging_dir() -> Path | None:
    """On Colab, checkpoints are written to local disk first and then copied to Drive, whose
    FUSE mount is slow and may drop a file written during a disconnect."""
    return decoded_cache_dir() / "staging" if on_colab() else None


def _rng_state(runtime: rt.Runtime) -> dict:
    state = {"torch": torch.get_rng_state()}
    if runtime.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(runtime.device)
    return state


def _set_rng_state(state: dict, runtime: rt.Runtime) -> None:
    torch.set_rng_state(state["torch"])
    if runtime.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], runtime.device)


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
        config, state, resumed_from = open_run(settings, fresh)
        config.validate()
        runtime = rt.setup(config.precision)
        try:
            return _train(config, state, resumed_from, runtime, progress, on_record)
        finally:
            rt.teardown(runtime)


def _train(config: TrainConfig, state: dict | None, resumed_from: Path | None, runtime: rt.Runtime,
           progress: bool, on_record: Callable[[dict], None] | None) -> Path:
    out = Path(config.out)
    say = print if runtime.is_main else (lambda *a, **k: None)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)

    cache_dir = Path(config.cache_dir) if config.cache_dir else decoded_cache_dir()
    if not runtime.is_main:
        rt.barrier(runtime)  # rank 0 decodes the cache first; the others then read it
    splits = load_splits(config.data, config.image_size, config.val_fraction, config.seed,
                         config.min_colourfulness, cache_dir, config.max_images or None,
                         progress and runtime.is_main)
    if runtime.is_main:
        rt.barrier(runtime)
    say(f"data: {len(splits.train)} training and {len(splits.val)} validation photos; "
        f"{splits.dropped_grey} near-grey dropped, {len(splits.bad)} unreadable skipped")
    for line in splits.bad:
        say(f"  skipped {line}")
    run_config = asdict(config) | {"mean_ab": mean_ab(splits.train), "format": MODEL_FORMAT}

    say(f"precision: {runtime.precision_reason}")
    G, D, opt_g, opt_d, scaler = build_training(config, runtime, pretrained=state is None)
    ema = copy.deepcopy(G).eval().requires_grad_(False)
    say(f"generator: {count_parameters(G):,} parameters; discriminator: {count_parameters(D):,}")

    step = 0
    if state is not None:
        for part, key in ((G, "G"), (D, "D"), (ema, "ema"), (opt_d, "opt_d"), (scaler, "scaler")):
            part.load_state_dict(state[key])
        opt_g.load_state_dict(_in_groups(state["opt_g"], opt_g, list(G.parameters())))
        _set_rng_state(state["rng"], runtime)
        step = state["step"]
        say(f"resumed from {resumed_from} at step {step}")
    metrics = MetricsLog(out / METRICS, step if state is not None else None, on_record) if runtime.is_main else None
    if metrics and state is None:
        metrics.write({"kind": "data", "step": 0, "train": len(splits.train), "val": len(splits.val),
                       "dropped_grey": splits.dropped_grey, "unreadable": splits.bad})
    if metrics:
        metrics.write({"kind": "precision", "step": step, "device": str(runtime.device),
                       "amp_dtype": str(runtime.amp_dtype).replace("torch.", "") if runtime.amp_dtype else "float32",
                       "reason": runtime.precision_reason})
    G_train = DDP(G) if runtime.distributed else G
    D_train = DDP(D) if runtime.distributed else D

    per_rank = config.batch_size
    steps_per_epoch = len(splits.train) // (per_rank * runtime.world_size)
    if steps_per_epoch == 0:
        raise DataError(f"{len(splits.train)} training photos is less than one batch of "
                         f"{per_rank} x {runtime.world_size} processes")
    total = steps_per_epoch * config.epochs
    # Training time, counted across resumes, for --max-minutes (one clock for all ranks: rank 0's).
    started = time.perf_counter() - (state.get("elapsed", 0.0) if state is not None else 0.0)

    def out_of_time() -> bool:
        return bool(config.max_minutes) and rt.agree(time.perf_counter() - started >= 60 * config.max_minutes, runtime)

    last_save = time.perf_counter()

    def save_due() -> bool:  # besides every save_every steps: a disconnect costs minutes, not an epoch
        return bool(config.save_every_minutes) and rt.agree(
            time.perf_counter() - last_save >= 60 * config.save_every_minutes, runtime)

    def save() -> None:
        nonlocal last_save
        last_save = time.perf_counter()
        if runtime.is_main:
            save_checkpoint({
                "G": G.state_dict(), "D": D.state_dict(), "ema": ema.state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "epoch": step // steps_per_epoch, "rng": _rng_state(runtime), "config": run_config,
                "elapsed": time.perf_counter() - started,
            }, checkpoint_path(out, step), staging=staging_dir())
            prune_checkpoints(out, config.keep_checkpoints)
        rt.barrier(runtime)

    bar = tqdm(total=total, initial=step, desc="training", disable=not (progress and runtime.is_main),
               dynamic_ncols=True)
    G_train.train(), D_train.train()
    # --data-on-device: the uint8 cache lives on the GPU (a quarter of float32), crops happen there.
    images = splits.train.to(runtime.device) if config.data_on_device else splits.train
    batches = BatchStream(images, config, steps_per_epoch, runtime.rank, runtime.world_size, runtime.device)
    tick, ticked, waited = time.perf_counter(), step, 0.0
    first_step, skipped, in_a_row = step, 0, 0
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runtime.device)
    with rt.GracefulStop(enabled=not runtime.distributed) as stop, contextlib.closing(batches):
        while step < total and not out_of_time():
            epoch = step // steps_per_epoch
            gan_phase = epoch >= config.l1_epochs
            for group in (*opt_g.param_groups, *opt_d.param_groups):  # a function of the step: resumes exactly
                group["lr"] = learning_rate(config, step, steps_per_epoch) * group.get("lr_scale", 1.0)
            fetched = time.perf_counter()
            batch = batches.batch(step)
            waited += time.perf_counter() - fetched
            logs = train_step(batch, G_train, D_train, opt_g, opt_d, scaler, config, gan_phase, runtime)
            step += 1
            if logs.pop("skipped"):  # G did not move: neither does its average
                skipped, in_a_row = skipped + 1, in_a_row + 1
                if in_a_row >= MAX_SKIPS_IN_A_ROW:
                    raise TrainingDiverged(
                        f"{in_a_row} steps in a row up to step {step} had inf or NaN losses or gradients; "
                        f"nothing was saved from them, the last checkpoint in {out} is intact. Try "
                        "--precision fp32 or a lower --lr.")
            else:
                in_a_row = 0
                update_ema(ema, G, min(config.ema_decay, (1 + step) / (10 + step)))  # warm-up for short runs
            bar.update(1)
            bar.set_postfix(phase="gan" if gan_phase else "l1", **{k: f"{v:.3f}" for k, v in logs.items()})
            if metrics and step % config.log_every == 0:
                elapsed = time.perf_counter() - tick
                record = {"kind": "train", "step": step, "epoch": epoch, "phase": "gan" if gan_phase else "l1",
                          "sec_per_step": elapsed / (step - ticked), "data_wait": waited / elapsed,
                          "skipped_steps": skipped, **logs}
                if runtime.device.type == "cuda":
                    record["peak_memory_gb"] = torch.cuda.max_memory_allocated(runtime.device) / 1e9
                    torch.cuda.reset_peak_memory_stats(runtime.device)
                metrics.write(record)
                tick, ticked, waited, skipped = time.perf_counter(), step, 0.0, 0
            if step % steps_per_epoch == 0:
                if runtime.is_main:
                    validate(ema, splits, runtime, out, epoch, step, metrics)
                save()
            elif step % config.save_every == 0 or stop.requested or save_due():
                save()
            if stop.requested:
                bar.close()
                raise KeyboardInterrupt(f"stopped at step {step}; the same command again continues it")
    bar.close()
    if step < total:  # --max-minutes ran out mid-epoch: score and keep what there is
        say(f"--max-minutes {config.max_minutes:g} spent at step {step} of {total}")
        if step % steps_per_epoch and step > first_step:  # not already scored and saved
            if runtime.is_main:
                validate(ema, splits, runtime, out, step // steps_per_epoch, step, metrics)
            save()

    export = out / EXPORT_NAME
    if runtime.is_main:
        export_generator(ema.state_dict(), run_config, export, fp16=config.export_fp16,
                         provenance=provenance(out, run_config, step))
        say(f"exported the EMA generator to {export}")
    return export


def validate(ema, splits, runtime: rt.Runtime, out: Path, epoch: int, step: int, metrics: MetricsLog) -> dict:
    """Score the EMA generator on the validation photos, whole, tightly cropped (figures
    prefixed crop_), as old prints (old_) and, for a model with hints, with VAL_HINTS clicks;
    write a sample grid and the plot."""
    def predict(l_norm, hints=None):  # at the photos' own size, which is the training size: no resizing
        return predict_ab(ema, l_norm, l_norm.shape[-1], runtime, hints)

    figures = score(predict, splits.val, runtime.device)
    figures |= {f"crop_{k}": v for k, v in score(predict, splits.val_crop, runtime.device).items()}
    figures |= {f"old_{k}": v for k, v in score(predict, splits.val, runtime.device, old_print=True).items()}
    if getattr(ema, "hints", False):
        figures |= {f"hints{VAL_HINTS}_{k}": v
                    for k, v in score(predict, splits.val, runtime.device, hints=VAL_HINTS).items()}
    samples = out / "samples" / f"epoch_{epoch + 1:03d}.png"
    spread = torch.linspace(0, len(splits.val) - 1, min(4, len(splits.val))).long()  # different people
    save_samples(predict, torch.cat([splits.val[spread], splits.val_crop[spread]]), runtime.device, samples)
    metrics.write({"kind": "val", "step": step, "epoch": epoch, **figures, "samples": str(samples)})
    plot_metrics(out / METRICS, out / "metrics.png")
    shown = ("psnr", "delta_e2000", "colourfulness_ratio")
    framings = [p for p in ("", "crop_", "old_", f"hints{VAL_HINTS}_") if p + "psnr" in figures]
    tqdm.write(f"epoch {epoch + 1}: " + ", ".join(f"{p}{k} {figures[p + k]:.3f}" for p in framings for k in shown))
    return figures
