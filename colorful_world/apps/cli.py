"""The command line: train, colorize, info, export, evaluate, download-lfw, serve.
`python -m colorful_world` is the same."""

import argparse
import json
import signal
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from colorful_world.core.config import (GROUPS, PRESET_HELP, PRESETS, TrainConfig, metavar, shown_default,
                                        with_preset)
from colorful_world.core.hints import HintError, parse_hint_arg, parse_hints
from colorful_world.core.tone import STRENGTH_MAX, check_strength
from colorful_world.inference.backends import BACKEND_HELP, BACKENDS
from colorful_world.inference.export import HINTS_KEY, VALIDATION_KEYS
from colorful_world.io.errors import UserError

EXAMPLES = """\
examples:
  colorful-world colorize old.jpg                  # colorized/old.png, by the bundled face model
  colorful-world colorize album/ -o colour/        # every photo of a folder
  colorful-world colorize old.jpg --hint 120,80,#3050c0 --strength 1.2   # a colour you know; stronger
  colorful-world train --data lfw --out runs/faces # train your own (the same command again continues)
  colorful-world serve                             # an upload page and an HTTP API on port 8000

`colorful-world COMMAND --help` lists a command's options.
"""

TRAIN_EXAMPLES = """\
examples:
  colorful-world train --data lfw --out runs/faces                   # LFW, downloaded once
  colorful-world train --data photos/ --out runs/mine --max-minutes 60   # your own colour photos, an hour
  colorful-world train --data lfw --out runs/faces --epochs 30       # the same run, taken on to 30 epochs
  colorful-world train --data lfw --out runs/ref --preset pix2pix    # the pix2pix reference
  colorful-world train --data photos/ --init-from bundled --lr 5e-5 --epochs 2   # fine-tune the bundled model
  torchrun --nproc_per_node 2 -m colorful_world train --data lfw     # one process per GPU

The same command again continues its run from the newest checkpoint; --fresh starts over.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Examples as written; options' help wrapped to the terminal."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=32)


def flag(name: str) -> str:
    """A TrainConfig field's command-line flag."""
    return "--" + name.replace("_", "-")


def setting_help(setting) -> str:
    """A TrainConfig field's help and its default, printed once."""
    return f"{setting.metadata['help']} (default: {shown_default(setting)})"


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a colorizer; the same command again continues its run",
                       usage="colorful-world train [--preset NAME] [--data PATH] [--out DIR] [OPTION ...]",
                       description="Train a colorizer: a pix2pix-style GAN that predicts the colour of grey "
                                   "photos, in CIELAB.", epilog=TRAIN_EXAMPLES, formatter_class=_Formatter)
    run = p.add_argument_group("starting and continuing")
    run.add_argument("--preset", choices=sorted(PRESETS), default=None,
                     help="start from a known configuration, for comparisons; settings given beside it win. "
                          + "; ".join(f"{name}: {text}" for name, text in sorted(PRESET_HELP.items())))
    run.add_argument("--fresh", action="store_true",
                     help="start a new run even where --out holds one (the old run is moved aside, not deleted)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (logs and metrics.jsonl stay)")
    groups = {name: p.add_argument_group(title) for name, title in GROUPS.items()}
    for setting in fields(TrainConfig):
        group = groups[setting.metadata["group"]]
        if isinstance(setting.default, bool):
            group.add_argument(flag(setting.name), action=argparse.BooleanOptionalAction, default=None,
                               help=setting_help(setting))
            continue
        group.add_argument(flag(setting.name), type=type(setting.default), default=None, help=setting_help(setting),
                           choices=setting.metadata["choices"] or None, metavar=metavar(setting),
                           action="append" if setting.name == "data" else "store")


def _train(args) -> int:
    from colorful_world.training.train import train
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    if "data" in given:
        given["data"] = _sources(given["data"])
    train(with_preset(given | {"preset": args.preset}), fresh=args.fresh, progress=not args.no_progress)
    return 0


def _sources(data: list[str] | None) -> str | list[str] | None:
    """Repeated --data: one source stays text, as a run's config has always held it."""
    return data[0] if data and len(data) == 1 else data


def _new_folders(path: Path) -> list[Path]:
    """The folders of `path`, itself included, that do not exist yet: deepest first."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


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
    output = Path(args.output)
    made = _new_folders(output)
    written = []
    try:
        colorizer = Colorizer.from_checkpoint(args.checkpoint, backend=args.backend)
        look = {"chroma_gain": colorizer.chroma_gain * strength, "hints": hints,
                "restore_contrast": args.restore_contrast}
        written, errors = colorize_files(colorizer, args.inputs, output, progress=not args.no_progress,
                                         workers=args.workers, look=look)
    finally:
        if not written:  # nothing came of it: leave no empty folder behind
            for folder in made:
                try:
                    folder.rmdir()
                except OSError:  # not empty, or not ours to remove
                    break
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


FRAMINGS = {VALIDATION_KEYS["whole"]: "whole photos", VALIDATION_KEYS["crop"]: "tight crops",
            VALIDATION_KEYS["old"]: "as old prints", VALIDATION_KEYS["scenes"]: "scenes"}
FIGURES = (("psnr", "PSNR dB", "{:.2f}"), ("ssim", "SSIM", "{:.3f}"), ("delta_e2000", "ΔE2000", "{:.2f}"),
           ("colourfulness_ratio", "colour / truth's", "{:.2f}"))


def describe_model(path, config: dict, provenance: dict) -> str:
    """`info`'s page: what a model is, where it comes from and how it scores, for a person."""
    def line(label: str, text: str) -> str:
        return textwrap.fill(text, 100, initial_indent=f"{label:<12}", subsequent_indent=" " * 12,
                             break_on_hyphens=False)

    arch = config.get("arch", "unet")
    network = f"{arch}" + (f" on {config['encoder']}" if config.get("encoder") and arch == "encoder_unet" else "")
    network += f", works at {config.get('image_size', '?')} px"
    colour = f"chroma gain {config.get('chroma_gain', 1.0):g}; colour hints: {'yes' if config.get('hints') else 'no'}"
    steps = provenance.get("steps", provenance.get("step"))
    trained = [f"{steps:,} steps" if isinstance(steps, int) else "",
               f"the run set for {config['epochs']} epochs" if config.get("epochs") else "",
               f"photos: {provenance.get('data') or config.get('data') or 'not recorded'}"]
    date = str(provenance.get("date", ""))[:10]
    lines = [line("model", str(path)), line("network", network), line("colour", colour),
             line("trained", ", ".join(t for t in trained if t) + (f", finished {date}" if date else ""))]
    if provenance.get("note"):
        lines.append(line("note", provenance["note"]))
    hinted = provenance.get(HINTS_KEY) if isinstance(provenance.get(HINTS_KEY), dict) else {}
    tables = [(FRAMINGS[key], provenance[key]) for key in FRAMINGS if isinstance(provenance.get(key), dict)]
    tables += [(f"with {count} hint{'s' * (str(count) != '1')}", results) for count, results in hinted.items() if isinstance(results, dict)]
    # A run's own validation record is flat (the model's figures, its step): the model's row alone.
    tables = [(label, results if all(isinstance(v, dict) for v in results.values()) else {"model": results})
              for label, results in tables if results]
    if tables:
        photos = next((r["model"].get("photos") for _, r in tables if "photos" in r.get("model", {})), None)
        lines += ["", f"figures on the held-out photos{f' ({photos})' if photos else ''}:",
                  f"{'':<28}" + "".join(f"{label:>{len(label) + 3}}" for _, label, _ in FIGURES)]
        for framing, results in tables:
            for name, figures in results.items():
                cells = "".join(f"{form.format(figures[k]) if k in figures else '-':>{len(label) + 3}}"
                                for k, label, form in FIGURES)
                lines.append(f"{framing if name == 'model' else '':<15}{name.replace('_', ' '):<13}{cells}")
    else:
        lines += ["", "no figures recorded: colorful-world export CKPT --data PHOTOS measures them"]
    lines += ["", "the whole record: colorful-world info --json"]
    return "\n".join(lines)


def _info(args) -> int:
    from colorful_world.nets.model_record import model_path, read_record
    config, provenance = read_record(args.checkpoint)
    if args.json:
        print(json.dumps({"model": str(model_path(args.checkpoint)), "provenance": provenance, "config": config},
                         indent=2))
    else:
        print(describe_model(model_path(args.checkpoint), config, provenance))
    return 0


def _export(args) -> int:
    from colorful_world.inference.export import export_model
    output = export_model(args.checkpoint, args.output, chroma_gain=args.chroma_gain, data=_sources(args.data),
                          cache_dir=args.cache_dir, onnx=args.onnx, fp16=args.fp16, note=args.note,
                          hints_table=args.hints_table)
    print(f"exported {output} ({output.stat().st_size / 1e6:.1f} MB)")
    return 0


def _evaluate(args) -> int:
    from colorful_world.inference.evaluate import evaluate, format_table
    results = evaluate(args.checkpoint, _sources(args.data), args.cache_dir, progress=not args.no_progress, size=args.size,
                       framing=args.framing, hints=args.hints)
    print(f"{args.framing}: {results['model']['photos']} held-out photos at {results['model']['size']} px")
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
    parser = argparse.ArgumentParser(prog="colorful-world", description="Colorize black-and-white photos, "
                                     "faces first; train, measure and serve the colorizer.",
                                     epilog=EXAMPLES, formatter_class=_Formatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("colorize", help="colorize photos and folders of photos", formatter_class=_Formatter,
                       description="Colorize photos: each INPUT's colour version is written as OUTPUT/<name>.png "
                                   "at the photo's own size.",
                       epilog="examples:\n"
                              "  colorful-world colorize old.jpg\n"
                              "  colorful-world colorize album/ scans/*.tif -o colour/\n"
                              "  colorful-world colorize old.jpg --hint 120,80,#3050c0 --hint 60,200,#204020\n"
                              "  colorful-world colorize faded.jpg --restore-contrast --strength 1.3\n")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photos or folders of photos")
    p.add_argument("--output", "-o", default="colorized", metavar="DIR",
                   help="folder the colour photos go to (default: colorized)")
    p.add_argument("--checkpoint", "-c", default=None, metavar="MODEL",
                   help="a model (.safetensors, .onnx) or a training checkpoint (default: the bundled face model)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help=BACKEND_HELP)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads that decode and write photos beside the network (default: the cores, at most 4)")
    look = p.add_argument_group("the colours")
    look.add_argument("--hint", action="append", metavar="X,Y,#RRGGBB",
                      help="a colour you know at pixel (X, Y) of the photo (origin top left), e.g. 120,80,#3050c0 "
                           "for a blue dress; repeat for more; one photo only")
    look.add_argument("--hints", metavar="FILE", help='hints as a JSON file: [[x, y, "#rrggbb"], ...]')
    look.add_argument("--strength", default=1.0, metavar="S",
                      help=f"colour strength from 0 (grey) to {STRENGTH_MAX:g}; 1 is the model's own (default: 1)")
    look.add_argument("--restore-contrast", action="store_true",
                      help="stretch a faded print's tones to the full range first, and keep them in the result")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    _add_train(sub)

    p = sub.add_parser("info", help="what a model is: its network, data, steps, date and validation figures",
                       description="What a model is: its network, the photos and steps it was trained with, and "
                                   "its figures on held-out photos.", formatter_class=_Formatter)
    p.add_argument("checkpoint", nargs="?", default=None, metavar="MODEL",
                   help="a model or checkpoint (default: the bundled one)")
    p.add_argument("--json", action="store_true", help="print the whole record, config and provenance, as JSON")

    p = sub.add_parser("export", help="a training checkpoint's EMA generator as a small .safetensors "
                                      "(or, with --onnx, .onnx) model", formatter_class=_Formatter,
                       description="Export a model: a training checkpoint's EMA generator, or an exported model "
                                   "again, as .safetensors or .onnx, with its config and where it comes from.",
                       epilog="examples:\n"
                              "  colorful-world export runs/faces/checkpoints/step_000001000.pt -o model.safetensors\n"
                              "  colorful-world export CKPT -o model.safetensors --chroma-gain auto --data PHOTOS\n"
                              "  colorful-world export model.safetensors --onnx -o model.onnx\n")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a training checkpoint (.pt) or an exported model")
    p.add_argument("--output", "-o", required=True, metavar="FILE",
                   help="the model file to write (.safetensors, or .onnx with --onnx)")
    p.add_argument("--onnx", action="store_true",
                   help="write an ONNX model for --backend onnx and the light install (needs the onnx extra)")
    p.add_argument("--fp16", action="store_true", help="store weights in half precision (half the size)")
    p.add_argument("--data", action="append", metavar="PATH",
                   help="also measure it on the validation split of these photos: whole, tightly cropped and as "
                        "old prints; repeated, the sources after the first as scenes")
    p.add_argument("--hints-table", action="store_true",
                   help="with --data, a model that takes colour hints is also measured with 1, 5 and 10 hints "
                        "per photo (slow)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where decoded photos are cached (default: ~/.cache/colorful_world)")
    p.add_argument("--note", default="", metavar="TEXT", help="free text kept in the provenance, e.g. the training command")
    p.add_argument("--chroma-gain", default=None, metavar="X|auto",
                   help="scale the model's colour by this factor whenever it colorizes, or 'auto': the factor "
                        "that makes its colour as strong as the truth's on average over the training photos "
                        "(needs --data); L1 training leaves colour it is unsure of too grey")

    p = sub.add_parser("evaluate", help="figures on held-out photos vs the grey and mean-colour baselines",
                       formatter_class=_Formatter,
                       description="Score a model on the photos it never saw (the split it was trained with), "
                                   "next to two baselines: no colour at all, and one mean colour everywhere.",
                       epilog="example:\n  colorful-world evaluate --data lfw --framing crop\n")
    p.add_argument("--data", required=True, action="append", metavar="PATH",
                   help="the photos the model was trained on, or lfw (the same split is used); repeated, as "
                        "train's, faces first")
    p.add_argument("--checkpoint", "-c", default=None, metavar="MODEL",
                   help="a model or checkpoint (default: the bundled face model)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where decoded photos are cached (default: ~/.cache/colorful_world)")
    p.add_argument("--size", type=int, default=None, metavar="PX",
                   help="score at this side in pixels (default: the model's own): the model colorizes at its "
                        "size and its colour is resized to this one, as for any photo; compares models of "
                        "different sizes")
    p.add_argument("--framing", choices=tuple(VALIDATION_KEYS), default="whole",
                   help="whole photos, their tight central crops (the central half of the side: the face), "
                        "the whole photos made to look like old prints, colour scored on the clean L, or scenes: "
                        "the photos of every --data after the first (with one, its own) (default: whole)")
    p.add_argument("--hints", type=int, default=0, metavar="N",
                   help="give the model N hints per photo, sampled from the true colour (seeded: the same "
                        "points for every model; default: 0)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    from colorful_world.io.download import add_arguments
    add_arguments(sub.add_parser("download-lfw", help="download, verify and extract LFW", formatter_class=_Formatter,
                                 description="Download Labeled Faces in the Wild, check it and extract it, "
                                             "resuming a broken download."))
    from colorful_world.apps.server import add_arguments as add_serve_arguments
    add_serve_arguments(sub.add_parser("serve", help="an HTTP API and upload page for colorizing "
                                                     "(needs the serve extra)", formatter_class=_Formatter,
                                       description="Serve colorizing over HTTP: an upload page and a JSON API, "
                                                   "with bounded uploads, pixels and memory."))
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
