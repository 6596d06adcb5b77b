"""colab/launch_training.sh on the CPU: a smoke run on synthetic photos, then the same command with
one more epoch, which continues the run the way a re-run after a Colab disconnect does."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from colorful_world.nets.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "colab" / "launch_training.sh"
TINY_YAML = """\
image_size: 32
batch_size: 8
options: {arch: unet, l1_epochs: 1, base_channels: 8, depth: 3, disc_channels: 8}
lr: 2e-4            # YAML reads this as text; the launcher makes it a number again
"""


def launch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # This interpreter's folder first, so `python3` and `torchrun` are those of the test environment.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("COLAB_RELEASE_TAG", None)
    return subprocess.run(["bash", str(LAUNCHER), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_help_documents_the_launcher(tmp_path):
    result = launch("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("--config", "--out", "--fresh", "torchrun", "Drive", "papermill"):
        assert word in result.stdout


@pytest.mark.slow
def test_unknown_arguments_are_refused(tmp_path):
    result = launch("--epochz", "3", cwd=tmp_path)
    assert result.returncode != 0 and "unknown argument(s) --epochz 3" in result.stderr


@pytest.mark.slow
def test_cpu_smoke_run_writes_the_executed_notebook_by_the_checkpoints_and_resumes(tmp_path, synthetic_folder):
    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    run = tmp_path / "runs" / "smoke"
    common = ("--data", str(synthetic_folder), "--run-name", "smoke", "--config", "tiny.yaml",
              "--max-images", "40", "--val-fraction", "0.2", "--min-colourfulness", "1",
              "--cache-dir", str(tmp_path / "cache"))

    first = launch(*common, "--epochs", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "a new run" in first.stdout
    executed = nbformat.read(run / "train.ipynb", as_version=4)
    assert not [out for cell in executed.cells if cell.cell_type == "code" for out in cell.outputs
                if out.output_type == "error"]
    assert (run / "generator.safetensors").is_file()
    steps_per_epoch = load_checkpoint(list_checkpoints(run)[-1])["step"]

    second = launch(*common, "--epochs", "2", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "continuing the run" in second.stdout and "resumed from" in second.stdout
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == 2 * steps_per_epoch


def test_help_is_the_settings_own_help_and_needs_nothing_installed(tmp_path):
    """--help runs before set-up, so it may need nothing but Python: here numpy, torch, papermill
    and yaml are made unimportable, and every train setting's help still comes out, from TrainConfig."""
    from dataclasses import fields

    from colorful_world.core.config import TrainConfig
    code = ("import sys, runpy\n"
            "for name in ('numpy', 'torch', 'papermill', 'yaml', 'PIL'): sys.modules[name] = None\n"
            "sys.argv = ['launch', '--help']\n"
            "runpy.run_module('colorful_world.apps.launch', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    flat = " ".join(result.stdout.split())
    for setting in fields(TrainConfig):
        assert f"--{setting.name.replace('_', '-')}" in flat
        assert " ".join(setting.metadata["help"].split()) in flat, setting.name
    assert "--preset {pix2pix,unet}" in flat and "--fresh" in flat and "--config FILE.yaml" in flat
    assert "--epochs N passes over the training photos; raised later, the same run goes on to the new number " \
           "(default: 20) --" in flat  # the default printed once
    assert launch("--help", cwd=tmp_path).stdout == result.stdout  # the script prints the same


def parameters(*argv, notebook=ROOT / "notebooks" / "train.ipynb"):
    from colorful_world.apps.launch import notebook_parameters
    return notebook_parameters(str(notebook), list(argv))


def test_every_train_option_is_taken_or_refused_with_a_sentence(tmp_path):
    from colorful_world.apps.launch import LaunchError
    params = parameters("--preset", "pix2pix", "--epochs", "1", "--fresh", "--no-hints", "--run-name", "ref")
    assert (params["preset"], params["epochs"], params["fresh"], params["run_name"]) == ("pix2pix", 1, True, "ref")
    assert params["image_size"] == 256 and params["options"]["arch"] == "unet" and params["options"]["ema_decay"] == 0
    assert params["options"]["hints"] is False
    with pytest.raises(LaunchError, match="--no-progress is not taken here"):
        parameters("--no-progress")


BAD_YAML = {
    "tag.yaml": ("epochs: !!python/object/apply:os.system ['touch pwned']\n", "line 1: could not determine a constructor"),
    "list.yaml": ("- epochs: 5\n- image_size: 64\n", "a mapping of names to values (epochs: 5), not a list"),
    "type.yaml": ("epochs: five\n", "epochs in type.yaml must be a whole number, not 'five'"),
    "half.yaml": ("epochs: 2.5\n", "epochs in half.yaml must be a whole number, not 2.5"),
    "bool.yaml": ("hints: 'no'\n", "hints in bool.yaml must be true or false, not 'no'"),
    "choice.yaml": ("options: {gan_mode: wgan}\n", "gan_mode in choice.yaml must be one of vanilla, lsgan"),
    "options.yaml": ("options: [gan_mode]\n", "options must be a mapping"),
    "unknown.yaml": ("epochz: 5\n", "unknown setting(s) epochz in unknown.yaml"),
    "broken.yaml": ("epochs: [5\n", "broken.yaml, line 2:"),
    # A billion laughs: 9 levels of 9 references expand to 9**9 strings, once anything walks them.
    "laughs.yaml": ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                    + "".join(f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")),
                    "line 1: anchors and aliases (& and *) are not taken"),
}


@pytest.mark.parametrize("name", sorted(BAD_YAML))
def test_a_yaml_file_the_launcher_cannot_use_is_one_sentence(name, tmp_path, monkeypatch):
    from colorful_world.apps.launch import LaunchError
    text, says = BAD_YAML[name]
    (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LaunchError) as refused:
        parameters("--config", name)
    assert says in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_the_script_refuses_a_bad_yaml_file_in_one_sentence_before_any_run(tmp_path):
    (tmp_path / "laughs.yaml").write_text(BAD_YAML["laughs.yaml"][0])
    result = launch("--config", "laughs.yaml", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("launch_training.sh: laughs.yaml, line 1: anchors")
    assert not (tmp_path / "runs").exists()


def test_a_good_yaml_file_gives_each_setting_its_type(tmp_path, monkeypatch):
    (tmp_path / "run.yaml").write_text("lr: 2e-4\nepochs: 3.0\nmax_minutes: 5\npreset: unet\n"
                                       "options: {min_crop: '0.75', data_on_device: true}\n")
    monkeypatch.chdir(tmp_path)
    params = parameters("--config", "run.yaml", "--epochs", "4")  # the flag wins over the file
    assert params["epochs"] == 4 and params["preset"] == "unet"
    options = params["options"]
    assert options["lr"] == 2e-4 and options["max_minutes"] == 5.0 and isinstance(options["max_minutes"], float)
    assert options["min_crop"] == 0.75 and options["data_on_device"] is True and options["arch"] == "unet"


@pytest.mark.slow
def test_the_preset_given_to_the_script_is_what_the_notebook_trains(tmp_path, synthetic_folder):
    """`--preset pix2pix`, shrunk to CPU size by flags beside it: the executed notebook's parameters
    name it, and the run's checkpoint holds the reference's settings the flags did not change."""
    run = tmp_path / "runs" / "ref"
    result = launch("--preset", "pix2pix", "--data", str(synthetic_folder), "--run-name", "ref", "--epochs", "1",
                    "--image-size", "32", "--batch-size", "8", "--base-channels", "8", "--depth", "3",
                    "--disc-channels", "8", "--max-images", "40", "--val-fraction", "0.2",
                    "--min-colourfulness", "1", "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    executed = nbformat.read(run / "train.ipynb", as_version=4)
    injected = next(c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert 'preset = "pix2pix"' in injected and '"arch": "unet"' in injected
    config = load_checkpoint(list_checkpoints(run)[-1])["config"]
    assert (config["arch"], config["max_channels"], config["l1_epochs"], config["ema_decay"]) == ("unet", 512, 0, 0.0)
    assert (config["chroma_weight"], config["min_crop"], config["old_prints"], config["hints"]) == (0.0, 1.0, 0.0, False)
