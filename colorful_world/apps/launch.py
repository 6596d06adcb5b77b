"""The launcher behind colab/launch_training.sh: flags and YAML files -> train.ipynb's
parameters; then papermill runs the notebook into the run folder.

`python -m colorful_world.apps.launch NOTEBOOK [--config F.yaml] [--NAME VALUE ...]`
`python -m colorful_world.apps.launch --help` prints the launcher's help, needing nothing but
Python (it runs before anything is installed).
"""

import argparse
import math
import os
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from colorful_world.core.config import GROUPS, PRESET_HELP, PRESETS, TrainConfig, metavar, shown_default, with_preset
from colorful_world.io.errors import ConfigError

SETTINGS = {f.name: f for f in fields(TrainConfig)}
# The notebook's own parameters beside the train settings: their types and help, shown by the
# launcher's --help and in the notebook's parameters cell.
NOTEBOOK_KINDS = {"run_name": str, "fresh": bool, "preset": str}
NOTEBOOK_HELP = {
    "preset": '"pix2pix" (the pix2pix reference) or "unet" (the U-Net from scratch): a known configuration to '
              'start from; the values here and options win over it',
    "run_name": "the run's folder name, in Drive's colorful_world/runs on Colab, in runs/ elsewhere",
    "fresh": "start a new run even where one exists (the old one is moved aside, not deleted); otherwise the "
             "same settings again continue the run",
    "options": "any other `colorful-world train` setting, by name",
}
# train.ipynb's parameters cell, in this order: train settings by their TrainConfig help, then the
# notebook's own (tests/test_notebooks.py holds the notebook to parameters_cell()).
NOTEBOOK_PARAMETERS = {"data": '"lfw"', "image_size": "128", "epochs": "20", "batch_size": "16", "preset": '""',
                       "run_name": '"faces"', "out": '""', "fresh": "False",
                       "options": '{}  # e.g. {"max_minutes": 120, "gan_mode": "lsgan"}'}
KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
MAX_YAML_BYTES = 1 << 20  # a run's settings are a few lines

USAGE = """\
Usage: bash colab/launch_training.sh [--config FILE.yaml] [--preset NAME] [--NAME VALUE ...]

Installs what is missing (colab/setup.sh), then runs notebooks/train.ipynb with papermill and
writes the executed notebook next to the run's checkpoints, as RUN/train.ipynb. Every setting of
`colorful-world train` is taken, as a flag or by its name in a YAML file; flags win over files,
and a later file over an earlier one. Anything else is refused with the reason.
"""

WHERE = """\
Where it runs:
  Colab          mount Drive first, so checkpoints outlive the session:
                 from google.colab import drive; drive.mount("/content/drive")
  Linux + GPUs   one process per visible GPU under torchrun when there are several
  CPU            fine for a smoke run: --image-size 32 --epochs 1 --max-images 64

After a disconnect or a kill, run the same command again: it continues from the last checkpoint.

Examples:
  bash colab/launch_training.sh --data lfw --out runs/faces
  bash colab/launch_training.sh --preset pix2pix --run-name reference --max-minutes 120
  bash colab/launch_training.sh --config big.yaml --epochs 5 --image-size 256
"""


class LaunchError(ConfigError):
    """A flag or a YAML file the launcher cannot use; the message says which and why."""


def _entry(name: str, text: str) -> str:
    return textwrap.fill(text, 100, initial_indent=f"  {name:<28}", subsequent_indent=" " * 30,
                         break_on_hyphens=False) if len(name) < 28 else \
        f"  {name}\n" + textwrap.fill(text, 100, initial_indent=" " * 30, subsequent_indent=" " * 30,
                                      break_on_hyphens=False)


def help_text() -> str:
    """The launcher's --help: its own options, then every train setting with the help written
    beside its TrainConfig field, grouped as `colorful-world train --help` groups them."""
    parts = [USAGE, "The launcher's own options:",
             _entry("--config FILE.yaml", 'settings by name, e.g. "epochs: 5", "image_size: 128", '
                    '"options: {gan_mode: lsgan}"; repeat it for more files'),
             _entry("--run-name NAME", f"{NOTEBOOK_HELP['run_name']} (default: faces)"),
             _entry("--fresh", NOTEBOOK_HELP["fresh"]),
             _entry(f"--preset {{{','.join(sorted(PRESETS))}}}", "start from a known configuration; settings given "
                    "beside it win. " + "; ".join(f"{name}: {text}" for name, text in sorted(PRESET_HELP.items()))),
             ""]
    for group, title in GROUPS.items():
        parts.append(f"Training settings: {title}")
        for setting in SETTINGS.values():
            if setting.metadata["group"] == group:
                name = f"--{setting.name.replace('_', '-')} {metavar(setting)}".strip()
                parts.append(_entry(name, f"{setting.metadata['help']} (default: {shown_default(setting)})"))
        parts.append("")
    return ("\n".join(parts) + "\n" + WHERE).rstrip()


def parameters_cell() -> str:
    """train.ipynb's parameters cell: each parameter under its help, the help of its TrainConfig
    field (or NOTEBOOK_HELP), wrapped as comments."""
    lines = ["# This run's settings, each under its help (`colorful-world train --help` prints the same)."]
    for name, value in NOTEBOOK_PARAMETERS.items():
        text = SETTINGS[name].metadata["help"] if name in SETTINGS else NOTEBOOK_HELP[name]
        if name == "out":
            text += "; empty: run_name's folder"
        lines += textwrap.wrap(text, 98, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)
        lines.append(f"{name} = {value}")
    return "\n".join(lines)


def typed(name: str, value, where: str = ""):
    """A setting's value in its own type, as the command line gives it (YAML reads 2e-4 as text),
    or LaunchError saying what it should be. Names the launcher does not know pass as they are."""
    kind = type(SETTINGS[name].default) if name in SETTINGS else NOTEBOOK_KINDS.get(name)
    if kind is None:
        return value
    converted = _convert(kind, value)
    if converted is None:
        raise LaunchError(f"{name}{where} must be {KIND_WORDS[kind]}, not {value!r}")
    choices = SETTINGS[name].metadata["choices"] if name in SETTINGS else ()
    if choices and converted not in choices:
        raise LaunchError(f"{name}{where} must be one of {', '.join(choices)}, not {value!r}")
    return converted


def _convert(kind: type, value):
    """`value` as `kind`, or None where it is not one."""
    if isinstance(value, bool) or value is None:
        return value if kind is bool else None
    if kind is bool:
        return None
    if kind is str:
        return str(value) if isinstance(value, (str, int, float)) else None
    if isinstance(value, str):
        try:
            value = float(value) if kind is float else int(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    if kind is int:
        return int(value) if math.isfinite(value) and value == int(value) else None
    return float(value)


def read_yaml(path: str) -> dict:
    """A YAML file of settings, as a dict; LaunchError for anything else: a file that is not
    there, not YAML, not a mapping, or that uses tags or aliases (never needed for settings, and
    the way to a code-running or a billion-laughs file)."""
    import yaml
    where = Path(path)
    try:
        if where.stat().st_size > MAX_YAML_BYTES:
            raise LaunchError(f"{path}: {where.stat().st_size:,} bytes is too long for a file of settings")
        text = where.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise LaunchError(f"{path}: cannot be read ({getattr(err, 'strerror', None) or err})") from None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
                raise LaunchError(f"{path}, line {token.start_mark.line + 1}: anchors and aliases (& and *) are "
                                  "not taken in a file of settings; write each value out")
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "not YAML"
        if isinstance(err, yaml.constructor.ConstructorError):
            problem = f"{problem}; a file of settings holds plain names and values, no tags"
        raise LaunchError(f"{path}{line}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise LaunchError(f"{path}: a file of settings is a mapping of names to values (epochs: 5), "
                          f"not a {type(loaded).__name__}")
    options = loaded.get("options", {})
    if not isinstance(options, dict):
        raise LaunchError(f"{path}: options must be a mapping of names to values, not {options!r}")
    loaded = {**options, **{key: value for key, value in loaded.items() if key != "options"}}
    odd = [key for key in loaded if not isinstance(key, str)]
    if odd:
        raise LaunchError(f"{path}: setting names are words, not {odd[0]!r}")
    return {key: typed(key, value, f" in {path}") for key, value in loaded.items()}


def notebook_parameters(notebook: str, argv: list[str]) -> dict:
    """The launcher's flags, YAML files and every `train` option -> papermill parameters: the
    notebook's own by name, the other settings in `options`, the preset merged in (flags and files
    win over it) so that the parameters the notebook records are those it trains with."""
    import papermill

    from colorful_world.apps.cli import build_parser
    from colorful_world.training.run_folder import DEFAULT_RUN, run_dir

    launcher = argparse.ArgumentParser(prog="launch_training.sh", add_help=False)
    launcher.add_argument("--config", action="append", default=[])
    launcher.add_argument("--run-name")
    ours, rest = launcher.parse_known_args(argv)
    train = build_parser()
    flags, unknown = train.parse_known_args(["train", *rest])  # every train option, typed
    if unknown:
        raise LaunchError(f"unknown argument(s) {' '.join(unknown)}; see --help")
    defaults = vars(train.parse_args(["train"]))
    for name, value in vars(flags).items():
        if name not in SETTINGS and name not in ("command", "preset", "fresh") and value != defaults[name]:
            raise LaunchError(f"--{name.replace('_', '-')} is not taken here: the notebook shows its own progress")

    given = {}
    for config in ours.config:
        given.update(read_yaml(config))
    given.update({name: value for name, value in vars(flags).items() if name in SETTINGS and value is not None})
    given.update({"preset": flags.preset} if flags.preset else {})
    given.update({"fresh": True} if flags.fresh else {})
    given.update({"run_name": ours.run_name} if ours.run_name else {})

    accepted = papermill.inspect_notebook(notebook)  # the parameters cell's names
    unknown = sorted(set(given) - set(accepted) - set(SETTINGS))
    if unknown:
        raise LaunchError(f"unknown setting(s) {', '.join(unknown)} in {' '.join(ours.config)}; see --help")
    own = {name: given.pop(name) for name in list(given) if name in NOTEBOOK_KINDS}
    settings = with_preset(given | {"preset": own.get("preset")})
    params = {name: value for name, value in (own | settings).items() if name in accepted}
    params["options"] = {name: value for name, value in settings.items() if name not in accepted}
    params["out"] = str(run_dir(params.get("out", ""), params.get("run_name", DEFAULT_RUN)).absolute())
    return params


def main(notebook: str, argv: list[str]) -> None:
    import papermill
    try:
        params = notebook_parameters(notebook, argv)
    except ConfigError as err:
        sys.exit(f"launch_training.sh: {err}")
    out = Path(params["out"])
    rank = int(os.environ.get("RANK", "0"))
    out.mkdir(parents=True, exist_ok=True)
    executed = out / ("train.ipynb" if rank == 0 else f"train.rank{rank}.ipynb")
    print(f"running {notebook} into {executed}", flush=True)
    papermill.execute_notebook(notebook, str(executed), parameters=params, progress_bar=rank == 0,
                               stdout_file=sys.stdout if rank == 0 else None,
                               stderr_file=sys.stderr if rank == 0 else None)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(help_text())
    else:
        main(sys.argv[1], sys.argv[2:])
