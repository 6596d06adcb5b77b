"""The command line: train, colorize, info, export, evaluate, download-lfw, serve.
`python -m colorful_world` is the same."""

import argparse
import json
import signal
import sys
from dataclasses import fields
from pathlib import Path

from colorful_world.core.config import PRESETS, TrainConfig
from colorful_world.core.hints import HintError, parse_hint_arg, parse_hints
from colorful_world.core.tone import STRENGTH_MAX, check_strength
from colorful_world.io.errors import UserError

TRAIN_HELP = {
    "data": "folder of colour photos (searched recursively), a .tgz/.tar/.zip of one, or 'lfw' to download LFW",
    "out": "run folder: checkpoints, metrics.jsonl, metrics.png, samples/, generator.safetensors "
           "(default runs/faces; on Colab, Drive's colorful_world/runs/faces)",
    "l1_epochs": "epochs of L1-only warm start before the adversarial phase",
    "gan_mode": "vanilla (BCE) or lsgan (least squares)",
    "depth": "unet levels; 0 = as deep as the image size allows (max 8); encoder_unet: always 5",
    "arch": "encoder_unet: a U-Net decoder on a pretrained torchvision encoder; unet: pix2pix's, from scratch",
    "encoder": "encoder_unet's torchvision classifier (mobilenet_v2, resnet18, resnet34)",
    "encoder_weights": "imagenet (torchvision's weights API, downloaded once), a safetensors state_dict of the "
                       "classifier for offline use (or $COLORFUL_WORLD_ENCODER_WEIGHTS), or random",
    "base_channels": "width of the narrowest level; 0 = the architecture's default (unet 32, encoder_unet 16)",
    "chroma_weight": "weight, beside the pixel loss, of the term that holds each pixel's saturation up to the "
                     "truth's (0 = the pixel loss alone)",
    "pixel_loss": "l1 (ab), mse (ab) or rgb_mse (the recombined sRGB photo, as PSNR scores it); the adversarial "
                  "phase weighs it by lambda_l1",
    "encoder_lr": "encoder_unet: the pretrained encoder's learning rate as a share of --lr (below 1 keeps more of "
                  "what ImageNet taught it; 0 freezes its weights)",
    "min_crop": "scale augmentation: random square crops of this share of the side up to the whole photo",
    "save_every": "steps between checkpoints (one is also written at each epoch end)",
    "precision": "auto (bf16 on GPUs of compute capability 8.0+, fp16 with a grad scaler on older ones such as "
                 "the T4, fp32 on CPU), or fp32, fp16, bf16",
    "save_every_minutes": "also write a checkpoint after this many minutes since the last one (0 = off)",
    "max_images": "use only the first N photos (0 = all), for a quick try",
    "min_colourfulness": "drop training photos less colourful than this (0-100 scale; grey is ~0)",
    "cache_dir": "where decoded photos are cached (default ~/.cache/colorful_world)",
    "data_on_device": "keep the decoded uint8 photos on the GPU and augment there",
    "log_every": "steps between lines of metrics.jsonl (losses, seconds per step, share of time spent on data)",
    "lr_decay_epochs": "the last N epochs bring the learning rate linearly down to 0, as pix2pix does",
    "max_minutes": "stop after this many minutes of training, counted across resumes: checkpoint, "
                   "validate and export as at the end (0 = no limit; the same command with a higher one goes on)",
}


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a colorizer; the same command again continues its run")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type is bool or isinstance(f.default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=TRAIN_HELP.get(f.name))
        else:
            p.add_argument(flag, type=type(f.default), default=None,
                           help=(TRAIN_HELP.get(f.name, "") + f" (default: {f.default})").strip())
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="start from a known configuration (pix2pix: the reference unet_256 + 70 px PatchGAN, "
                        "lambda 100, 256 px, no warm start, no EMA; unet: this project's U-Net from scratch); "
                        "flags given beside it win")
    p.add_argument("--fresh", action="store_true",
                   help="start a new run even where --out holds one (the old run is moved aside, not deleted)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _train(args) -> int:
    from colorful_world.training.train import train
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    given = PRESETS.get(args.preset, {}) | given
    train(given, fresh=args.fresh, progress=not args.no_progress)
    return 0


def _colorize(args) -> int:
    from colorful_world.inference.colorize import Colorizer
    from colorful_world.inference.folder import colorize_files
    # `kill` and container stops send SIGTERM: stop as Ctrl-C does, letting running writes finish.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    hints = _hints(args)
    if hints and (len(args.inputs) != 1 or Path(args.inputs[0]).is_dir()):
        raise HintError("hints belong to one photo: give exactly one photo with --hint or --hints")
    try:
        strength = check_strength(args.strength)
    except ValueError as err:
        raise UserError(f"--strength: {err}") from None
    colorizer = Colorizer.from_checkpoint(args.checkpoint, backend=args.backend)
    look = {"chroma_gain": colorizer.chroma_gain * strength, "hints": hints, "restore_contrast": args.restore_contrast}
    written, errors = colorize_files(colorizer, args.inputs, Path(args.output), progress=not args.no_progress,
                                     workers=args.workers, look=look)
    print(f"colorized {len(written)} photo(s) into {args.output}" + (f"; {len(errors)} failed" if errors else ""))
    return 1 if errors else 0


def _hints(args) -> list:
    """--hint X,Y,#RRGGBB (repeated) and --hints FILE.json, checked."""
    hints = [parse_hint_arg(text) for text in args.hint or []]
    if args.hints:
        try:
            hints += parse_hints(Path(args.hints).read_text())
        except OSError as err:
            raise HintError(f"--hints {args.hints}: {err.strerror}") from None
    return parse_hints(hints)


def _info(args) -> int:
    from colorful_world.nets.model_file import load_model, model_path
    _, config, provenance = load_model(args.checkpoint)
    print(f"model: {model_path(args.checkpoint)}")
    print(json.dumps({"provenance": provenance, "config": config}, indent=2))
    return 0


def _export(args) -> int:
    from datetime import datetime, timezone

    from colorful_world.nets.model_file import export_generator, load_model
    from colorful_world.training.run_folder import provenance as run_provenance
    state, config, saved = load_model(args.checkpoint)
    steps = saved.get("step", saved.get("steps", 0))  # a training checkpoint's, or an export's
    made = datetime.fromtimestamp(Path(args.checkpoint).stat().st_mtime, timezone.utc)  # its own date, not today's
    provenance = run_provenance(Path(args.checkpoint).parent.parent, config, steps, made)
    changes = {}
    if args.chroma_gain == "auto":
        if not args.data:
            raise UserError("--chroma-gain auto measures the model on its training photos: give --data")
        from colorful_world.inference.evaluate import calibrate_chroma
        changes["chroma_gain"] = round(calibrate_chroma(args.checkpoint, args.data, args.cache_dir), 3)
        print(f"chroma gain {changes['chroma_gain']} (calibrated on the training photos)")
    elif args.chroma_gain:
        try:
            changes["chroma_gain"] = float(args.chroma_gain)
        except ValueError:
            changes["chroma_gain"] = 0.0
        if not 0 < changes["chroma_gain"] < 10:
            raise UserError(f"--chroma-gain takes a factor from 0 to 10 or 'auto', not {args.chroma_gain!r}")
    if args.data:
        from colorful_world.inference.evaluate import evaluate
        gain = changes.get("chroma_gain")
        provenance["validation"] = evaluate(args.checkpoint, args.data, args.cache_dir, chroma_gain=gain)
        provenance["validation_tight_crops"] = evaluate(args.checkpoint, args.data, args.cache_dir, framing="crop",
                                                        chroma_gain=gain)
    provenance["note"] = args.note
    if args.onnx:
        from colorful_world.inference.onnx_backend import export_onnx
        export_onnx(args.checkpoint, Path(args.output), provenance, changes)
    else:
        export_generator(state, config | changes, Path(args.output), fp16=args.fp16, provenance=provenance)
    print(f"exported {args.output} ({Path(args.output).stat().st_size / 1e6:.1f} MB)")
    return 0


def _evaluate(args) -> int:
    from colorful_world.inference.evaluate import evaluate, format_table
    results = evaluate(args.checkpoint, args.data, args.cache_dir, progress=not args.no_progress, size=args.size,
                       framing=args.framing, hints=args.hints)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _download(args) -> int:
    from colorful_world.io.download import main_from_args
    return main_from_args(args)


def _serve(args) -> int:
    from colorful_world.apps.server import main_from_args
    return main_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorful-world", description="Colorize black-and-white photos.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)

    p = sub.add_parser("colorize", help="colorize photos and folders of photos")
    p.add_argument("inputs", nargs="+", help="photos or folders")
    p.add_argument("--output", "-o", default="colorized", help="folder for OUT/<stem>.png (default: colorized)")
    p.add_argument("--checkpoint", "-c", default=None,
                   help="generator.safetensors or a training checkpoint (default: the bundled face model)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="onnx: ONNX Runtime on the CPU, faster there (needs the onnx extra)")
    p.add_argument("--workers", type=int, default=None,
                   help="threads that decode and write photos beside the network (default: the cores, at most 4)")
    p.add_argument("--hint", action="append", metavar="X,Y,#RRGGBB",
                   help="a colour you know at pixel (X, Y) of the photo (origin top left), e.g. 120,80,#3050c0 "
                        "for a blue dress; repeat for more; one photo only")
    p.add_argument("--hints", metavar="FILE", help='hints as a JSON file: [[x, y, "#rrggbb"], ...]')
    p.add_argument("--strength", default=1.0, metavar="S",
                   help=f"colour strength from 0 (grey) to {STRENGTH_MAX:g}; 1 is the model's own (default)")
    p.add_argument("--restore-contrast", action="store_true",
                   help="stretch a faded print's tones to the full range first, and keep them in the result")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("info", help="what a model is: its config, data, steps, date and validation figures")
    p.add_argument("checkpoint", nargs="?", default=None, help="model or checkpoint (default: the bundled one)")

    p = sub.add_parser("export", help="a training checkpoint's EMA generator as a small .safetensors "
                                      "(or, with --onnx, .onnx) model")
    p.add_argument("checkpoint", help="a training checkpoint (.pt) or an exported model")
    p.add_argument("--output", "-o", required=True)
    p.add_argument("--onnx", action="store_true", help="write an ONNX model for --backend onnx (needs the onnx extra)")
    p.add_argument("--fp16", action="store_true", help="store weights in half precision (half the size)")
    p.add_argument("--data", default=None, help="also measure it on the validation split of these photos, "
                                                "whole and tightly cropped")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--note", default="", help="free text kept in the provenance, e.g. the training command")
    p.add_argument("--chroma-gain", default=None,
                   help="scale the model's colour by this factor whenever it colorizes, or 'auto': the factor "
                        "that makes its colour as strong as the truth's on average over the training photos "
                        "(needs --data); L1 training leaves colour it is unsure of too grey")

    p = sub.add_parser("evaluate", help="figures on held-out photos vs the grey and mean-colour baselines")
    p.add_argument("--data", required=True, help="the photos the model was trained on (same split is used)")
    p.add_argument("--checkpoint", "-c", default=None, help="default: the bundled face model")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--size", type=int, default=None,
                   help="score at this side in pixels (default: the model's own): the model colorizes at its "
                        "size and its colour is resized to this one, as for any photo; compares models of "
                        "different sizes")
    p.add_argument("--framing", choices=("whole", "crop", "old"), default="whole",
                   help="whole photos, their tight central crops (the central half of the side: the face), or "
                        "the whole photos made to look like old prints (colour scored on the clean L)")
    p.add_argument("--hints", type=int, default=0, metavar="N",
                   help="give the model N hints per photo, sampled from the true colour (seeded: the same "
                        "points for every model)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--no-progress", action="store_true")

    from colorful_world.io.download import add_arguments
    add_arguments(sub.add_parser("download-lfw", help="download, verify and extract LFW"))
    from colorful_world.apps.server import add_arguments as add_serve_arguments
    add_serve_arguments(sub.add_parser("serve", help="an HTTP API and upload page for colorizing "
                                                     "(needs the serve extra)"))
    return parser


COMMANDS = {"train": _train, "colorize": _colorize, "info": _info, "export": _export, "evaluate": _evaluate,
            "download-lfw": _download, "serve": _serve}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UserError as err:  # bad input: photo, model, data, archive, settings, a download
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        print(f"interrupted{': ' + str(stop) if str(stop) else ''}", file=sys.stderr)
        return 130
