"""The launcher behind colab/launch_training.sh: flags and YAML files -> train.ipynb's
parameters; then papermill runs the notebook into the run folder.

`python -m colorful_world.apps.launch NOTEBOOK [--config F.yaml] [--NAME VALUE ...]`
"""

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

import papermill
import yaml

from colorful_world.apps.cli import build_parser
from colorful_world.core.config import TrainConfig
from colorful_world.training.run_folder import DEFAULT_RUN, run_dir

FIELD_TYPES = {f.name: type(f.default) for f in fields(TrainConfig)}


def typed(name, value):
    """YAML reads 2e-4 as text: give every train setting its own type, as the command line does."""
    kind = FIELD_TYPES.get(name)
    return kind(value) if kind and not isinstance(value, kind) else value


def notebook_parameters(notebook: str, argv: list[str]) -> dict:
    """The launcher's flags, YAML files and every `train` option -> papermill parameters."""
    launcher = argparse.ArgumentParser(prog="launch_training.sh", add_help=False)
    launcher.add_argument("--config", action="append", default=[])
    launcher.add_argument("--run-name")
    launcher.add_argument("--fresh", action="store_true", default=None)
    ours, rest = launcher.parse_known_args(argv)
    flags, unknown = build_parser().parse_known_args(["train", *rest])  # every train option, typed
    if unknown:
        sys.exit(f"launch_training.sh: unknown argument(s) {' '.join(unknown)}; see --help")

    given = {}
    for config in ours.config:
        given.update(yaml.safe_load(Path(config).read_text()) or {})
    given.update({name: value for name, value in vars(flags).items() if name in FIELD_TYPES and value is not None})
    given.update({name: value for name, value in vars(ours).items() if name != "config" and value is not None})
    given = {**given.pop("options", {}), **given}  # a YAML file's options: as if given by name

    accepted = papermill.inspect_notebook(notebook)  # the parameters cell's names
    unknown = sorted(set(given) - set(accepted) - set(FIELD_TYPES))
    if unknown:
        sys.exit(f"launch_training.sh: unknown parameter(s) {', '.join(unknown)} in {' '.join(ours.config)}")
    params = {name: typed(name, value) for name, value in given.items() if name in accepted}
    params["options"] = {name: typed(name, value) for name, value in given.items() if name not in accepted}
    params["out"] = str(run_dir(params.get("out", ""), params.get("run_name", DEFAULT_RUN)).absolute())
    return params


def main(notebook: str, argv: list[str]) -> None:
    params = notebook_parameters(notebook, argv)
    out = Path(params["out"])
    rank = int(os.environ.get("RANK", "0"))
    out.mkdir(parents=True, exist_ok=True)
    executed = out / ("train.ipynb" if rank == 0 else f"train.rank{rank}.ipynb")
    print(f"running {notebook} into {executed}", flush=True)
    papermill.execute_notebook(notebook, str(executed), parameters=params, progress_bar=rank == 0,
                               stdout_file=sys.stdout if rank == 0 else None,
                               stderr_file=sys.stderr if rank == 0 else None)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
