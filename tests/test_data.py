import os
import numpy as np
import pytest
import torch
from PIL import Image

from colorful_world.core import data
from synthetic import write_synthetic_photos


@pytest.fixture
def mixed_folder(tmp_path):
    folder = tmp_path / "photos"
    write_synthetic_photos(folder, 30, size=40, seed=3)
    Image.fromarray(np.full((40, 40), 128, dtype=np.uint8)).convert("RGB").save(folder / "grey.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


def test_unreadable_files_are_named_and_grey_ones_dropped(mixed_folder, tmp_path):
    splits = data.load_splits(str(mixed_folder), 32, 0.2, 0, 5.0, tmp_path / "cache", progress=False)
    assert len(splits.bad) == 1 and "broken.jpg" in splits.bad[0]
    assert splits.dropped_grey == 1
    assert len(splits.train) + len(splits.val) == 30
    assert splits.train.dtype == torch.uint8 and splits.train.shape[1:] == (3, 64, 64)
    assert splits.val.shape[1:] == (3, 32, 32)


def test_photos_are_decoded_once(mixed_folder, tmp_path, monkeypatch):
    first = data.load_splits(str(mixed_folder), 32, 0.2, 0, 5.0, tmp_path / "cache", progress=False)

    def no_decoding(*args):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "_decode_square", no_decoding)
    again = data.load_splits(str(mixed_folder), 32, 0.2, 0, 5.0, tmp_path / "cache", progress=False)
    assert torch.equal(first.train, again.train) and again.bad == first.bad


def test_validation_alone_decodes_only_the_validation_photos(mixed_folder, tmp_path):
    both = data.load_splits(str(mixed_folder), 32, 0.2, 0, 5.0, tmp_path / "both", progress=False)
    val = data.load_splits(str(mixed_folder), 32, 0.2, 0, 5.0, tmp_path / "val", progress=False, with_train=False)
    assert torch.equal(val.val, both.val) and len(val.train) == 0
    assert len(list((tmp_path / "val" / "decoded").glob("images-*.npy"))) == 1  # both: one per split


def test_an_archive_of_photos_is_training_data(mixed_folder, tmp_path):
    import tarfile
    archive = tmp_path / "photos.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(mixed_folder, arcname="photos")
    splits = data.load_splits(str(archive), 32, 0.2, 0, 5.0, tmp_path / "cache", progress=False)
    assert len(splits.train) + len(splits.val) == 30


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="no such folder"):
        data.load_splits(str(tmp_path / "nowhere"), 32, 0.2, 0, 5.0, tmp_path / "cache", progress=False)


def test_data_lfw_gets_the_photos_through_the_downloader(mixed_folder, tmp_path, monkeypatch):
    from colorful_world.io import download
    calls = []
    monkeypatch.setattr(download, "prepare_lfw", lambda **kwargs: calls.append(1) or mixed_folder)
    splits = data.load_splits("lfw", 32, 0.2, 0, 5.0, tmp_path / "cache", progress=False)
    assert calls == [1] and len(splits.train) + len(splits.val) == 30


def test_two_runs_decoding_the_same_photos_at_once_both_succeed(mixed_folder, tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    files = sorted(mixed_folder.glob("synthetic_*.png"))
    with ThreadPoolExecutor(2) as pool:
        caches = list(pool.map(lambda _: data.build_cache(files, 36, tmp_path / "cache", False), range(2)))
    assert np.array_equal(caches[0].images, caches[1].images)
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_a_photo_replaced_by_one_of_the_same_size_is_decoded_again(tmp_path):
    photo = tmp_path / "photos" / "a.bmp"
    photo.parent.mkdir()
    Image.new("RGB", (40, 40), (200, 30, 30)).save(photo)  # BMP: same size whatever the colour
    first = data.build_cache([photo], 36, tmp_path / "cache", progress=False)
    size, mtime = photo.stat().st_size, photo.stat().st_mtime_ns
    Image.new("RGB", (40, 40), (30, 30, 200)).save(photo)
    os.utime(photo, ns=(mtime + 10**9, mtime + 10**9))

    again = data.build_cache([photo], 36, tmp_path / "cache", progress=False)
    assert photo.stat().st_size == size
    assert first.images[0, 0, 0, 0] == 200 and again.images[0, 0, 0, 0] == 30
