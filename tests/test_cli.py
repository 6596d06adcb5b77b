import hashlib
import re
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor, data as skdata

from colorful_world.core.config import TrainConfig


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_colorize_folder_with_odd_and_bad_files(tmp_path, tiny_model):
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut = Image.fromarray(skdata.astronaut()).resize((120, 90))
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    rgba = astronaut.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    rgba.save(photos / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    astronaut.save(photos / "rotated.jpg", exif=exif)
    deep = (np.asarray(astronaut.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(deep).save(photos / "deep16.png")
    astronaut.convert("L").save(photos / "grey.jpg")
    before = {p.name: _digest(p) for p in photos.iterdir()}
    out = tmp_path / "out"

    result = subprocess.run([sys.executable, "-m", "colorful_world", "colorize", str(photos),
                             "--checkpoint", str(tiny_model), "--output", str(out)],
                            capture_output=True, text=True)

    assert result.returncode == 1
    assert "corrupt.jpg" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["deep16.png", "grey.png", "rgba.png", "rotated.png"]
    assert Image.open(out / "rotated.png").size == (90, 120)  # EXIF orientation applied
    for name in ("deep16.png", "grey.png"):
        assert Image.open(out / name).size == (120, 90) and Image.open(out / name).mode == "RGB"
    coloured = Image.open(out / "rgba.png")
    assert coloured.mode == "RGBA" and coloured.size == (120, 90)
    assert np.array_equal(np.asarray(coloured.getchannel("A")), np.asarray(rgba.getchannel("A")))
    assert {p.name: _digest(p) for p in photos.iterdir()} == before  # inputs untouched


@pytest.mark.slow
def test_colorize_never_overwrites_an_input(tmp_path, tiny_model):
    photo = tmp_path / "face.png"
    Image.fromarray(skdata.astronaut()[::8, ::8]).convert("L").save(photo)
    before = _digest(photo)
    result = subprocess.run([sys.executable, "-m", "colorful_world", "colorize", str(photo),
                             "--checkpoint", str(tiny_model), "--output", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _digest(photo) == before
    assert Image.open(tmp_path / "face-2.png").mode == "RGB"


@pytest.mark.slow
def test_missing_checkpoint_is_one_clear_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "colorful_world", "colorize", str(tmp_path),
                             "--checkpoint", str(tmp_path / "nope.safetensors")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "nope.safetensors" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_export_then_info_tell_where_a_model_comes_from(tmp_path, tiny_model):
    import os

    from colorful_world.nets import checkpoint as ckpt
    from colorful_world.nets.model_file import load_model
    state, config, _ = load_model(tiny_model)
    run = tmp_path / "run"
    ckpt.save_checkpoint({"ema": state, "config": {**config, "data": "faces/", "epochs": 1, "gan_mode": "lsgan"},
                          "step": 3, "epoch": 0}, ckpt.checkpoint_path(run, 3))
    os.utime(ckpt.checkpoint_path(run, 3), (1.6e9, 1.6e9))  # written in September 2020
    # The run went on after this checkpoint: the export must carry its own step's figures, not the last.
    (run / "metrics.jsonl").write_text('{"kind": "val", "step": 3, "epoch": 0, "psnr": 24.5}\n'
                                       '{"kind": "val", "step": 9, "epoch": 2, "psnr": 30.1}\n')
    model = tmp_path / "model.safetensors"
    exported = subprocess.run([sys.executable, "-m", "colorful_world", "export", str(ckpt.checkpoint_path(run, 3)),
                               "--output", str(model), "--fp16", "--note", "made in a test"],
                              capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    info = subprocess.run([sys.executable, "-m", "colorful_world", "info", str(model), "--json"], capture_output=True,
                          text=True)
    assert info.returncode == 0, info.stderr
    for fact in ('"steps": 3', '"psnr": 24.5', '"data": "faces/"', "made in a test", '"gan_mode": "lsgan"',
                 '"date": "2020-09-13'):
        assert fact in info.stdout
    assert "30.1" not in info.stdout


@pytest.mark.slow
def test_a_chroma_gain_travels_with_the_export_and_scales_its_colour(tmp_path, tiny_model):
    from skimage import color as skcolor

    from colorful_world import Colorizer
    strong = tmp_path / "strong.safetensors"
    command = [sys.executable, "-m", "colorful_world", "export", str(tiny_model), "-o", str(strong), "--chroma-gain"]
    assert subprocess.run(command + ["1.5"], capture_output=True, text=True).returncode == 0
    onnx = subprocess.run([sys.executable, "-m", "colorful_world", "export", str(strong), "--onnx",
                           "-o", str(tmp_path / "strong.onnx")], capture_output=True, text=True)
    assert onnx.returncode == 0, onnx.stderr
    grey = Image.fromarray(skdata.astronaut()).convert("L").resize((96, 96))
    chroma = {}
    for name, colorizer in (("plain", Colorizer.from_checkpoint(tiny_model)), ("strong", Colorizer.from_checkpoint(strong)),
                            ("onnx", Colorizer.from_checkpoint(tmp_path / "strong.onnx", backend="onnx"))):
        chroma[name] = np.abs(skcolor.rgb2lab(np.asarray(colorizer.colorize(grey)) / 255)[..., 1:]).mean()
    assert 1.4 < chroma["strong"] / chroma["plain"] < 1.6 and abs(chroma["onnx"] / chroma["strong"] - 1) < 0.02
    for bad, says in (("auto", "--data"), ("loud", "a factor from 0 to 10")):
        refused = subprocess.run(command + [bad], capture_output=True, text=True)
        assert refused.returncode == 2 and says in refused.stderr and "Traceback" not in refused.stderr


def test_preset_sets_the_pix2pix_reference_and_given_flags_win(monkeypatch):
    import colorful_world.training.train
    from colorful_world.apps.cli import main
    seen = {}
    monkeypatch.setattr(colorful_world.training.train, "train", lambda settings, **kw: seen.update(settings=settings, **kw))
    assert main(["train", "--preset", "pix2pix", "--lambda-l1", "50", "--out", "run"]) == 0
    config = TrainConfig(**seen["settings"])
    assert (config.arch, config.image_size, config.base_channels, config.max_channels, config.depth) == \
        ("unet", 256, 64, 512, 8)
    assert (config.l1_epochs, config.ema_decay, config.gan_mode, config.lambda_l1) == (0, 0.0, "vanilla", 50.0)
    assert seen["settings"]["image_size"] == 256 and not seen["fresh"]  # given: a continued run must match them


def test_project_errors_are_one_sentence_and_exit_2_and_bugs_keep_their_traceback(tmp_path, monkeypatch, capsys):
    import pytest

    import colorful_world.io.download
    from colorful_world.apps.cli import main
    from colorful_world.io.download import DownloadError

    def offline(*args, **kwargs):
        raise DownloadError("LFW could not be downloaded: no network")

    monkeypatch.setattr(colorful_world.io.download, "prepare_lfw", offline)
    assert main(["train", "--data", "lfw", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == "error: LFW could not be downloaded: no network"

    def bug(*args, **kwargs):
        raise ValueError("a bug, not the user's doing")

    monkeypatch.setattr(colorful_world.io.download, "prepare_lfw", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["train", "--data", "lfw", "--out", str(tmp_path / "run")])


@pytest.mark.slow
def test_a_model_whose_config_does_not_match_its_weights_is_one_sentence_and_exit_2(tmp_path):
    from dataclasses import asdict

    from colorful_world.core.config import TrainConfig
    from colorful_world.nets.model_file import export_generator
    from colorful_world.nets.models import build_generator

    net = build_generator(TrainConfig(arch="unet", image_size=64, base_channels=8).model())
    model = tmp_path / "model.safetensors"
    export_generator(net.state_dict(), asdict(TrainConfig(arch="unet", image_size=64, base_channels=16)), model)
    Image.new("L", (40, 30)).save(tmp_path / "old.png")
    for command in (["colorize", str(tmp_path / "old.png"), "-c", str(model), "-o", str(tmp_path / "out")],
                    ["serve", "-c", str(model), "--port", "0"]):
        result = subprocess.run([sys.executable, "-m", "colorful_world", *command], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "its config does not describe its weights (size mismatch for" in result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.slow
def test_a_model_with_nan_weights_fails_each_photo_clearly(tmp_path, tiny_model):
    from colorful_world.nets.model_file import export_generator, load_model

    state, config, _ = load_model(tiny_model)
    export_generator({k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state.items()},
                     config, tmp_path / "diverged.safetensors")
    for name in ("a", "b"):
        Image.new("L", (40, 30)).save(tmp_path / f"{name}.png")
    result = subprocess.run([sys.executable, "-m", "colorful_world", "colorize", str(tmp_path / "a.png"),
                             str(tmp_path / "b.png"), "-c", str(tmp_path / "diverged.safetensors"),
                             "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("inf or NaN colours") == 2 and "2 failed" in result.stdout


def _colorize_cli(*args):
    return subprocess.run([sys.executable, "-m", "colorful_world", "colorize", *map(str, args)],
                          capture_output=True, text=True)


def _one_sentence(result):
    return result.returncode == 2 and "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_output_that_is_a_file_or_an_empty_folder_is_one_sentence(tmp_path, tiny_model):
    photo = tmp_path / "face.png"
    Image.fromarray(skdata.astronaut()[::8, ::8]).save(photo)
    (tmp_path / "taken.txt").write_text("mine")
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.jpg").mkdir()

    to_a_file = _colorize_cli(photo, "-c", tiny_model, "-o", tmp_path / "taken.txt")
    assert _one_sentence(to_a_file) and "is a file" in to_a_file.stderr
    assert (tmp_path / "taken.txt").read_text() == "mine"
    for folder in ("empty", "x.jpg"):
        result = _colorize_cli(tmp_path / folder, "-c", tiny_model, "-o", tmp_path / "out")
        assert _one_sentence(result) and "no photos" in result.stderr


def test_an_output_folder_that_refuses_writes_fails_before_any_photo(tmp_path, tiny_model, monkeypatch):
    from colorful_world.inference import colorize as colorize_module
    from colorful_world.inference import folder
    photo = tmp_path / "face.png"
    Image.fromarray(skdata.astronaut()[::8, ::8]).save(photo)
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes through any mode bits: the refusal is simulated
        def refused(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(folder.tempfile, "mkstemp", refused)
    colorizer = colorize_module.Colorizer.from_checkpoint(tiny_model)
    monkeypatch.setattr(colorizer, "prepare", lambda *a, **k: pytest.fail("colorized before the check"))

    for target in (out, out / "below"):
        with pytest.raises(folder.OutputError, match="cannot write into .*Permission denied"):
            folder.colorize_files(colorizer, [photo], target, progress=False)


@pytest.mark.slow
def test_colorizing_into_the_input_folder_twice_skips_its_own_results(tmp_path, tiny_model):
    photos = tmp_path / "album"
    photos.mkdir()
    for name in ("a.jpg", "b.png"):
        Image.fromarray(skdata.astronaut()[::8, ::8]).convert("L").save(photos / name)

    for _ in range(2):
        result = _colorize_cli(photos, "-c", tiny_model, "-o", photos)
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg", "a.png", "b-2.png", "b.png"]
    assert "skipped 2 PNG(s) this tool wrote" in result.stderr


def _peak_rss_mb(command):
    """Run `command`; its exit code and peak resident memory in MB (from the kernel's own count)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stderr.close()
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


@pytest.mark.slow
def test_a_one_pixel_wide_photo_costs_memory_by_its_pixels(tmp_path, tiny_model):
    """1 x 4,000,000 pixels: one resize straight to the working size made a 4,000,000 x 32
    float intermediate (about 470 bytes a pixel); now it costs what a square photo does."""
    small, tall = tmp_path / "small.png", tmp_path / "tall.png"
    Image.new("L", (64, 64), 90).save(small)
    Image.new("L", (1, 4_000_000), 90).save(tall)
    command = [sys.executable, "-m", "colorful_world", "colorize", "-c", str(tiny_model), "-o", str(tmp_path / "out")]

    rc_small, base = _peak_rss_mb(command + [str(small)])
    rc_tall, peak = _peak_rss_mb(command + [str(tall)])
    assert rc_small == rc_tall == 0
    assert peak - base < 4_000_000 * 100 / 2**20, f"{peak - base:.0f} MB for 4 MP"
    assert Image.open(tmp_path / "out" / "tall.png").size == (1, 4_000_000)


def test_encoder_weights_take_torchvisions_own_pth_file_and_the_offline_error_says_where_torch_looks(
        tmp_path, offline_torch_hub):
    import torch
    import torchvision

    from colorful_world.nets.encoders import EncoderWeightsError, load_classifier
    torch.manual_seed(1)
    theirs = torchvision.models.mobilenet_v2().state_dict()
    pth = tmp_path / "mobilenet_v2-b0353104.pth"  # the name torchvision's download has
    torch.save(theirs, pth)
    ours = load_classifier("mobilenet_v2", str(pth)).state_dict()
    assert torch.equal(ours["features.3.conv.1.0.weight"], theirs["features.3.conv.1.0.weight"])

    import argparse
    torch.save({"features.0.0.weight": argparse.Namespace(x=1)}, tmp_path / "code.pth")  # any object but tensors
    with pytest.raises(EncoderWeightsError, match="loads without running code"):
        load_classifier("mobilenet_v2", str(tmp_path / "code.pth"))

    with pytest.raises(EncoderWeightsError) as offline_error:  # offline, nothing in torch's cache
        load_classifier("mobilenet_v2", "imagenet")
    assert str(offline_torch_hub / "hub" / "checkpoints" / pth.name) in str(offline_error.value)


def _options(parser):
    """(subcommand, option) -> help, for every option of every subcommand."""
    import argparse
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                for option in sub._actions:
                    if option.option_strings and option.dest != "help":
                        found[(name, option.option_strings[0])] = option.help or ""
    return found


def test_every_option_of_every_subcommand_has_help_with_its_default_once():
    from colorful_world.apps.cli import build_parser
    options = _options(build_parser())
    assert len({command for command, _ in options}) == 7 and len(options) > 80
    bare = [f"{command} {flag}" for (command, flag), text in options.items() if len(text.strip()) < 10]
    assert not bare, f"options without help: {bare}"
    twice = [f"{command} {flag}" for (command, flag), text in options.items() if text.count("default") > 1]
    assert not twice, f"defaults printed twice: {twice}"
    assert options[("train", "--out")].endswith("(default: runs/faces; on Colab, Drive's colorful_world/runs/faces)")
    assert options[("train", "--lr")] == "Adam's learning rate (default: 0.0002)"


def test_help_gives_examples_and_groups_the_training_settings():
    main_help = subprocess.run([sys.executable, "-m", "colorful_world", "--help"], capture_output=True, text=True)
    train_help = subprocess.run([sys.executable, "-m", "colorful_world", "train", "--help"], capture_output=True,
                                text=True)
    assert main_help.returncode == train_help.returncode == 0
    assert "examples:\n  colorful-world colorize old.jpg" in main_help.stdout
    assert "examples:\n  colorful-world train --data lfw --out runs/faces" in train_help.stdout
    headings = [line for line in train_help.stdout.splitlines() if line and not line.startswith(" ")
                and line.endswith(":")]
    assert headings[:2] == ["options:", "starting and continuing:"] and len(headings) >= 8, headings
    assert train_help.stdout.index("--preset") < train_help.stdout.index("--data") < train_help.stdout.index("--lr")


@pytest.mark.slow
def test_info_reads_as_text_and_json_on_asking(tmp_path):
    import json
    text = subprocess.run([sys.executable, "-m", "colorful_world", "info"], capture_output=True, text=True)
    raw = subprocess.run([sys.executable, "-m", "colorful_world", "info", "--json"], capture_output=True, text=True)
    assert text.returncode == raw.returncode == 0, text.stderr + raw.stderr
    record = json.loads(raw.stdout)
    assert record["config"]["image_size"] == 128 and record["provenance"]["validation"]["model"]["photos"] > 0
    assert "{" not in text.stdout and "network     encoder_unet on mobilenet_v2, works at 128 px" in text.stdout
    psnr = record["provenance"]["validation"]["model"]["psnr"]
    assert re.search(rf"^whole photos\s+model\s+{psnr:.2f}\s", text.stdout, re.MULTILINE)
    assert "colorful-world info --json" in text.stdout



def test_info_shows_every_framing_the_hints_table_and_a_run_s_own_record():
    from colorful_world.apps.cli import describe_model
    scores = {"model": {"psnr": 25.0, "photos": 40}, "grey": {"psnr": 22.0}, "mean_colour": {"psnr": 23.0}}
    page = describe_model("m.safetensors", {"image_size": 64}, {
        "validation_tight_crops": scores, "validation_old_prints": {**scores, "model": {"psnr": 24.25}},
        "validation_hints": {"1": {**scores, "model": {"psnr": 26.5}}, "10": {**scores, "model": {"psnr": 29.75}}}})
    for framing, psnr in (("tight crops", "25.00"), ("as old prints", "24.25"), ("with 1 hint", "26.50"),
                          ("with 10 hints", "29.75")):
        assert re.search(rf"^{framing}\s+model\s+{psnr}\s", page, re.MULTILINE), framing
    assert "held-out photos (40)" in page
    # A training run's validation record is flat: the model's row, no crash on its step and epoch.
    flat = describe_model("m.safetensors", {}, {"validation": {"step": 3, "epoch": 0, "psnr": 24.5}})
    assert re.search(r"^whole photos\s+model\s+24.50\s", flat, re.MULTILINE)

@pytest.mark.slow
def test_a_failed_colorize_leaves_no_folder_it_made(tmp_path, tiny_model):
    out = tmp_path / "out" / "deeper"
    result = _colorize_cli(tmp_path / "missing.jpg", "-c", tiny_model, "-o", out)
    assert result.returncode == 1 and "missing.jpg" in result.stderr
    assert not (tmp_path / "out").exists()
    refused = _colorize_cli(tmp_path / "missing.jpg", "-c", tmp_path / "nope.safetensors", "-o", out)
    assert refused.returncode == 2 and not (tmp_path / "out").exists()
    (tmp_path / "mine").mkdir()  # a folder the user had stays, even empty
    _colorize_cli(tmp_path / "missing.jpg", "-c", tiny_model, "-o", tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()
    photo = tmp_path / "face.png"
    Image.fromarray(skdata.astronaut()[::8, ::8]).save(photo)
    partly = _colorize_cli(photo, tmp_path / "missing.jpg", "-c", tiny_model, "-o", out)
    assert partly.returncode == 1 and (out / "face.png").is_file()  # what was made is kept


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_colorize_hint_and_hints_file_move_the_colour_at_the_hint(tmp_path, backend):
    """The README's `--hint X,Y,#RRGGBB` and `--hints FILE`, run as a user runs them, on the bundled model."""
    photo = tmp_path / "old.png"
    Image.fromarray(skdata.astronaut()).convert("L").resize((256, 256)).save(photo)
    (tmp_path / "hints.json").write_text('[[200, 200, "#3050c0"]]')
    runs = {"none": [], "hint": ["--hint", "200,200,#3050c0"], "file": ["--hints", tmp_path / "hints.json"]}
    ab = {}
    for name, extra in runs.items():
        out = tmp_path / name
        result = _colorize_cli(photo, "-o", out, "--backend", backend, "--no-progress", *extra)
        assert result.returncode == 0, result.stderr
        lab = skcolor.rgb2lab(np.asarray(Image.open(out / "old.png").convert("RGB")))
        ab[name] = lab[195:206, 195:206, 1:].mean(axis=(0, 1))
    assert np.allclose(ab["hint"], ab["file"], atol=1)
    assert ab["hint"][1] < ab["none"][1] - 15  # the blue hint pulls b (yellow-blue) towards blue


def test_export_onnx_without_the_onnx_extra_names_the_extra(tmp_path, tiny_model):
    """After the README's `pip install -e ".[train]"` alone: one sentence naming the extra, exit 2."""
    code = ("import sys; sys.modules['onnx'] = None; from colorful_world.apps.cli import main; "
            f"sys.exit(main(['export', {str(tiny_model)!r}, '--onnx', '-o', {str(tmp_path / 'm.onnx')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert _one_sentence(result) and "pip install 'colorful-world[train,onnx]'" in result.stderr, result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_train_on_lfw_offline_names_train_s_own_way_out(tmp_path, monkeypatch, capsys):
    """The downloader's alternatives are its own flags; train has --data, not --archive."""
    import functools

    import requests

    from colorful_world.apps.cli import main
    from colorful_world.io import download

    def offline(*args, **kwargs):
        raise requests.ConnectionError("no route to host")

    monkeypatch.setattr(download, "_fetch", offline)
    monkeypatch.setattr(download, "prepare_lfw",
                        functools.partial(download.prepare_lfw, dest=tmp_path / "lfw", backoff_s=0.0))
    assert main(["train", "--data", "lfw", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Could not make LFW ready" in err and "Alternatives: --data PATH" in err and "--archive" not in err


def test_training_shows_its_validation_and_the_time_limit_and_info_does_not_claim_the_epochs(
        tmp_path, synthetic_folder, capsys):
    from colorful_world.apps.cli import main
    run = tmp_path / "run"
    assert main(["train", "--data", str(synthetic_folder), "--arch", "unet", "--image-size", "32",
                 "--base-channels", "8", "--batch-size", "32", "--epochs", "1", "--max-minutes", "30",
                 "--out", str(run), "--cache-dir", str(tmp_path / "cache")]) == 0
    captured = capsys.readouterr()
    for framing in ("whole", "tight crops", "old prints"):  # each framing's bar, not minutes of silence
        assert f"validating: {framing}" in captured.err, framing
    assert "stops_in=30min" in captured.err  # the bar says when --max-minutes ends it
    assert "validation at step 5 (epoch 1): psnr" in captured.err + captured.out
    assert main(["info", str(run / "generator.safetensors")]) == 0
    assert "5 steps, the run set for 1 epochs" in capsys.readouterr().out


def test_every_subcommand_s_help_opens_with_what_it_does():
    from colorful_world.apps.cli import build_parser
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction)]
    for name, command in sub.choices.items():
        assert command.description and command.description[0].isupper(), name
