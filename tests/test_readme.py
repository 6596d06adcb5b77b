"""The README is a user's guide that stays true: its first screen holds what a new user needs,
every command of its user sections parses with the options it shows, and its links lead somewhere."""

import ast
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from colorful_world.apps.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.MULTILINE | re.DOTALL)


def commands() -> list[list[str]]:
    """Each command line of the README's shell blocks, its trailing comment left out, as words."""
    lines = [line for block in code_blocks("bash") for line in block.splitlines() if line.strip()]
    return [shlex.split(re.sub(r"\s+#(\s.*)?$", "", line)) for line in lines]


def test_the_first_code_block_holds_the_two_set_up_commands():
    first = [line.split("#")[0].split() for line in code_blocks(r"\w*")[0].splitlines()]
    assert [words[:2] for words in first] == [["bash", "colab/launch_training.sh"], ["bash", "tests/run.sh"]]
    assert (ROOT / "colab" / "launch_training.sh").is_file() and (ROOT / "tests" / "run.sh").is_file()


def test_the_first_screen_says_what_it_does_shows_it_and_its_limits():
    first_screen = README.split("\n## ")[0]  # everything before the first section
    assert README.index("docs/before_after.jpg") < README.index("```bash")
    assert (ROOT / "docs" / "before_after.jpg").is_file()
    assert first_screen.count("colab-badge.svg") == 3
    assert "Known limits" in first_screen and "faces" in first_screen and "brown" in first_screen
    assert len(first_screen.splitlines()) <= 30


def test_the_readme_is_a_guide_of_at_most_about_two_hundred_lines_in_the_promised_order():
    assert len(README.splitlines()) <= 200
    sections = re.findall(r"^## (.+)$", README, re.MULTILINE)
    assert sections == ["Colorize your own photo", "Train on Colab", "Train anywhere", "Serve", "Python API",
                        "Limits", "Where the rest lives"]
    assert "this project" not in README and "2-core CPU" in README


@pytest.mark.parametrize("words", [c for c in commands() if c[0] == "colorful-world" or "colorful_world" in c],
                         ids=lambda words: " ".join(words)[:60])
def test_every_colorful_world_command_parses(words):
    argv = words[1:] if words[0] == "colorful-world" else words[words.index("colorful_world") + 1:]
    args = build_parser().parse_args(argv)  # argparse exits on any flag or value it does not take
    assert args.command == argv[0]


@pytest.mark.parametrize("words", [c for c in commands() if c[:2] == ["bash", "colab/launch_training.sh"]],
                         ids=lambda words: " ".join(words)[:60])
def test_every_launcher_command_parses(words):
    from colorful_world.apps.launch import notebook_parameters
    params = notebook_parameters(str(ROOT / "notebooks" / "train.ipynb"), words[2:])
    assert params["out"]


def test_the_install_lines_name_extras_there_are_and_the_quick_path_is_light():
    installs = [words for words in commands() if words[:2] == ["pip", "install"]]
    assert installs, "no install line"
    quick = installs[0]
    assert "[" not in quick[2] and quick[2].startswith("colorful-world @ git+https://github.com/")
    for words in installs:
        for extras in re.findall(r"\[([\w,]+)\]", " ".join(words[2:])):
            assert set(extras.split(",")) <= set(EXTRAS), extras


def test_the_python_example_runs(tmp_path, monkeypatch):
    from PIL import Image
    from skimage import data as skdata
    (block,) = code_blocks("python")
    monkeypatch.chdir(tmp_path)
    Image.fromarray(skdata.astronaut()[::4, ::4]).convert("L").save("old.jpg")
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    colour = Image.open(tmp_path / "colour.png")
    assert colour.size == (128, 128) and colour.mode == "RGB"
    assert namespace["stronger"].size == colour.size


def test_every_link_leads_to_a_file_here():
    links = re.findall(r"\]\(((?!https?://|#)[^)]+)\)", README)
    assert len(links) >= 8
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing
    anchors = re.findall(r"\]\(#([^)]+)\)", README)
    titles = {re.sub(r"[^\w -]", "", t).lower().replace(" ", "-") for t in re.findall(r"^#+ (.+)$", README, re.M)}
    assert set(anchors) <= titles
