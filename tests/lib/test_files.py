"""lib.files.folder_version: the dataset's data version (raw_data's), which decides what make run
re-materializes. It changes with train.csv's bytes, an image added, removed or rewritten, and the
settings; it stays for a folder read again unchanged."""
import os

from cloud_assets.lib.files import folder_version


def test_the_dataset_version_follows_labels_images_and_settings(tmp_path):
    (tmp_path / "train_images").mkdir()
    (tmp_path / "train.csv").write_text("Image_Label,EncodedPixels\na.jpg_Fish,1 2\n")
    (tmp_path / "train_images" / "a.jpg").write_bytes(b"jpeg")

    def version(settings=None):
        return folder_version(tmp_path, ["train.csv"], ["train_images", "test_images"], settings or {"shards": 1})

    first = version()
    assert version() == first  # read again, unchanged
    seen = {first}
    (tmp_path / "train.csv").write_text("Image_Label,EncodedPixels\na.jpg_Fish,1 3\n")  # a label moved
    seen.add(version())
    (tmp_path / "train_images" / "b.jpg").write_bytes(b"jpeg")  # an image added
    seen.add(version())
    os.utime(tmp_path / "train_images" / "b.jpg", ns=(1, 1))  # rewritten (a new time)
    seen.add(version())
    (tmp_path / "train_images" / "a.jpg").unlink()  # removed
    seen.add(version())
    seen.add(version({"shards": 2}))  # a setting changed
    assert len(seen) == 6
