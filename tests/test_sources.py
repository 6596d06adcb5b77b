"""Several --data sources: each split on its own, mixed into batches in fixed shares."""
import pytest
import torch

from colorful_world.core import data
from colorful_world.core.config import TrainConfig, data_shares
from colorful_world.io.errors import ConfigError
from synthetic import write_synthetic_photos


@pytest.fixture
def sources(tmp_path):
    """An LFW-layout face folder (people with several photos) and a scene set with its own split."""
    faces = tmp_path / "faces"
    for person in range(12):
        name = f"Person_{person:02d}"
        for i, photo in enumerate(write_synthetic_photos(faces / name, 2, size=40, seed=person)):
            photo.rename(photo.with_name(f"{name}_{i + 1:04d}.png"))
    scenes = tmp_path / "scenes" / "scenes-v1"  # an archive's single top folder
    write_synthetic_photos(scenes / "train", 20, size=48, seed=50)
    write_synthetic_photos(scenes / "val" / "kodak", 6, size=48, seed=51)
    return faces, tmp_path / "scenes"


def test_each_source_splits_deterministically_and_disjointly(sources):
    faces, scenes = sources
    train, val = data.split_source(faces, 0.25, seed=3)
    assert (train, val) == data.split_source(faces, 0.25, seed=3)
    assert not {p.parent for p in train} & {p.parent for p in val}, "a person on both sides"
    assert len({p.parent for p in val}) == 3
    assert data.split_source(faces, 0.25, seed=4)[1] != val  # the seed chooses the people
    train, val = data.split_source(scenes, 0.25, seed=3)
    assert {p.parent.name for p in train} == {"train"} and {p.parent.name for p in val} == {"kodak"}
    assert (len(train), len(val)) == (20, 6)


def test_several_sources_stack_their_photos_and_score_the_others_as_scenes(sources, tmp_path):
    faces, scenes = sources
    splits = data.load_splits([str(faces), str(scenes)], 32, 0.25, 0, 5.0, tmp_path / "cache", progress=False)
    assert splits.train_counts == [18, 20] and len(splits.train) == 38
    assert len(splits.val) == 6 and len(splits.val_crop) == 6  # three people, two photos each
    assert splits.val_scenes.shape == (6, 3, 32, 32)
    alone = data.load_splits(str(faces), 32, 0.25, 0, 5.0, tmp_path / "cache", progress=False)
    assert torch.equal(alone.val, splits.val) and torch.equal(alone.train, splits.train[:18])
    assert alone.train_counts is None and alone.val_scenes is None


def test_the_mixing_weights_give_each_source_its_share_of_every_batch():
    counts, shares, batch = [1000, 300], [0.3, 0.7], 16
    picks = [data.mixed_picks(counts, shares, step, batch, seed=0) for step in range(200)]
    assert all(len(p) == batch for p in picks)
    from_second = torch.stack([(p >= counts[0]).float().mean() for p in picks])
    assert abs(from_second.mean().item() - 0.7) < 0.01  # exact to a photo a step
    assert from_second.min() >= 0.6 and from_second.max() <= 0.8
    second = torch.cat(picks)[torch.cat(picks) >= counts[0]] - counts[0]
    assert torch.equal(second[:300].sort().values, torch.arange(300)), "an epoch of a source shows each photo once"
    assert torch.equal(picks[57], data.mixed_picks(counts, shares, 57, batch, seed=0))  # a resume replays it
    assert not torch.equal(picks[57], data.mixed_picks(counts, shares, 57, batch, seed=1))


def test_mixing_weights_are_checked_against_the_sources():
    assert data_shares("", 2) is None
    assert data_shares("1,3", 2) == [0.25, 0.75]
    for bad in ("0.5", "0.5,x", "-1,2", "0,0", "nan,1"):
        with pytest.raises(ConfigError, match="one share per --data source"):
            data_shares(bad, 2)
    with pytest.raises(ConfigError, match="data_weights"):
        TrainConfig(data=["a", "b"], data_weights="1,2,3").validate()


def test_a_source_without_photos_is_a_sentence(sources, tmp_path):
    faces, _ = sources
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataError, match=r"empty: found 0 photos; a source needs at least 2"):
        data.load_splits([str(faces), str(empty)], 32, 0.25, 0, 5.0, tmp_path / "cache", progress=False)
    (empty / "train").mkdir()
    (empty / "val").mkdir()
    with pytest.raises(data.DataError, match="empty: no photos to train on"):
        data.load_splits([str(faces), str(empty)], 32, 0.25, 0, 5.0, tmp_path / "cache", progress=False)


def test_train_on_faces_and_a_scene_archive_then_evaluate_prints_the_scenes_framing(sources, tmp_path):
    """`train --data FACES --data SCENES.tgz --data-weights ...` scores every framing, scenes
    among them; `evaluate --data SCENES.tgz --framing scenes` on the command line, as a user runs it."""
    import json
    import subprocess
    import sys
    import tarfile

    from colorful_world.apps.cli import main
    faces, scenes = sources
    archive = tmp_path / "scenes.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(scenes / "scenes-v1", arcname="scenes-v1")
    run, cache = tmp_path / "run", tmp_path / "cache"
    assert main(["train", "--data", str(faces), "--data", str(archive), "--data-weights", "0.25,0.75",
                 "--arch", "unet", "--image-size", "32", "--base-channels", "8", "--batch-size", "4", "--epochs", "1",
                 "--val-fraction", "0.25", "--out", str(run), "--cache-dir", str(cache), "--no-progress"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["train_by_source"] == [18, 20] and records[0]["val_scenes"] == 6
    val = [r for r in records if r["kind"] == "val"][-1]
    assert {"psnr", "crop_psnr", "old_psnr", "scenes_psnr", "scenes_delta_e2000"} <= set(val)
    result = subprocess.run([sys.executable, "-m", "colorful_world", "evaluate", "--data", str(archive),
                             "--framing", "scenes", "-c", str(run / "generator.safetensors"), "--cache-dir",
                             str(cache), "--no-progress", "--size", "48"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scenes: 6 held-out photos at 48 px")
    assert {"model", "grey", "mean_colour"} <= {line.split()[0] for line in result.stdout.splitlines()[2:]}


def test_a_stray_file_among_the_people_keeps_the_split_by_person(sources):
    faces, _ = sources
    before = data.split_source(faces, 0.25, seed=3)
    write_synthetic_photos(faces / "Person_00", 1, size=40, seed=99)[0].rename(faces / "Person_00" / "notes.png")
    train, val = data.split_source(faces, 0.25, seed=3)
    people = {p.parent.name for p in train if p.name != "notes.png"}
    assert not people & {p.parent.name for p in val if p.name != "notes.png"}, "a person on both sides"
    assert len(train) + len(val) == len(before[0]) + len(before[1]) + 1


def test_settings_that_would_fail_after_decoding_are_refused_before_any_work():
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        TrainConfig(seed=184467440737095).validate()
    with pytest.raises(ConfigError, match="disc_layers 8 needs an image_size of at least 768"):
        TrainConfig(image_size=32, disc_layers=8).validate()
    TrainConfig(image_size=32, disc_layers=3).validate()  # 32 px: the default three layers fit
