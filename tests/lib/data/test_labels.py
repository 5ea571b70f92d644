import numpy as np
import pandas as pd
import pytest

from cloud_assets.lib.data import labels
from cloud_assets.eval import notebook


def test_label_table_and_split_match_the_notebook(tmp_path):
    from cloud_assets.synth import SynthConfig
    from cloud_assets.synth.dataset import write_csv, label_rows, plan

    cfg = SynthConfig(train=600, test=0, height=140, width=210, seed=5)
    path = tmp_path / "train.csv"
    write_csv(path, ("Image_Label", "EncodedPixels"), label_rows(plan(cfg), (cfg.height, cfg.width)))
    rows = labels.read_train_csv(path)
    table = labels.label_table(rows, labels.NOTEBOOK_CLASS_ORDER)
    ref_df, ref_classes = notebook.notebook_label_table(pd.read_csv(path))
    # the synthetic data keeps a label on every image, so the notebook drops none
    assert list(table["image"]) == list(ref_df["Image"])
    for cls in labels.NOTEBOOK_CLASS_ORDER:
        assert np.array_equal(table[cls].to_numpy(), ref_df[cls].to_numpy()), cls
    train, val = labels.stratified_split(table)
    ref_train, ref_val = notebook.notebook_split(ref_df)
    assert train == list(ref_train) and val == list(ref_val)


def test_class_order_comes_from_configuration_not_sorting(small_dataset):
    rows = labels.read_train_csv(small_dataset / "train.csv")
    order = ["Sugar", "Fish", "Gravel", "Flower"]
    table = labels.label_table(rows, order)
    assert list(table.columns[3:]) == order
    assert table["classes"].map(lambda c: c == ";".join(sorted(c.split(";")))).all()


def test_split_survives_a_label_combination_held_by_one_image():
    table = pd.DataFrame({"image": [f"{i:07x}.jpg" for i in range(11)],
                          "classes": ["Fish"] * 5 + ["Sugar"] * 5 + ["Fish;Flower;Gravel;Sugar"]})
    train, val = labels.stratified_split(table)
    assert len(train) + len(val) == 11 and set(train).isdisjoint(val)


def test_check_rows_names_file_line_and_problem(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("Image_Label,EncodedPixels\n"
                    "a.jpg_Fish,1 3\n"
                    "a.jpg_Fish,1 3\n"          # duplicate
                    "b.jpg_Cumulus,\n"           # unknown class
                    "bjpg,\n"                    # no _Class
                    "../c.jpg_Fish,\n"           # escapes the folder
                    "d.jpg_Sugar,1 2 3\n")       # odd RLE
    problems = labels.check_rows(labels.read_train_csv(path), path, labels.NOTEBOOK_CLASS_ORDER, (10, 10))
    text = "\n".join(map(str, problems))
    assert f"{path} line 3 ('a.jpg_Fish'): duplicate of line 2" in text
    assert "line 4 ('b.jpg_Cumulus'): unknown class 'Cumulus'" in text
    assert "line 5 ('bjpg'): Image_Label must be '<image>_<class>'" in text
    assert "line 6" in text and "not a plain file name" in text
    assert "line 7 ('d.jpg_Sugar'): EncodedPixels: odd number of fields" in text
    assert {p.check for p in problems} == {"train_csv_schema", "rle_valid"}


@pytest.mark.parametrize("content,message", [
    (b"\nImage,Pixels\na.jpg_Fish,\n", "line 2: missing column(s) Image_Label, EncodedPixels"),
    (b"Image_Label,EncodedPixels\n", "no rows after the header"),
    (b"", "empty file; expected the header 'Image_Label,EncodedPixels'"),
    (b"Image_Label,EncodedPixels\n\xff\xfe\xfa,1 2\n", "line 2: byte 0xff is not UTF-8"),
])
def test_read_train_csv_errors(tmp_path, content, message):
    path = tmp_path / "train.csv"
    path.write_bytes(content)
    with pytest.raises(labels.DatasetError, match=str(path)) as e:
        labels.read_train_csv(path)
    assert message in str(e.value)


def test_a_mask_of_many_runs_is_read_whole(tmp_path):
    """A full-size mask's RLE may pass the csv module's default limit of 128 KiB a field."""
    enc = " ".join(f"{7 * k + 1} 3" for k in range(40000))
    path = tmp_path / "train.csv"
    path.write_text(f"Image_Label,EncodedPixels\na.jpg_Fish,{enc}\na.jpg_Sugar,\n")
    rows = labels.read_train_csv(path)
    assert len(enc) > 128 * 1024 and list(rows["EncodedPixels"]) == [enc, ""] and list(rows["line"]) == [2, 3]


def test_what_train_csv_and_the_folders_leave_out_is_named(tmp_path):
    from cloud_assets.lib.data.images import jpeg_names

    (tmp_path / "train_images").mkdir()
    for name in ("a.jpg", "b.JPG", "c.jpeg", "notes.txt"):
        (tmp_path / "train_images" / name).write_bytes(b"")
    assert jpeg_names(tmp_path / "train_images") == ["a.jpg", "b.JPG", "c.jpeg"] and jpeg_names(tmp_path / "none") == []
    path = tmp_path / "train.csv"
    path.write_text("Image_Label,EncodedPixels\na.jpg_Fish,1 2\na.jpg_Sugar,\nc.jpeg_Fish,\nc.jpeg_Flower,\n"
                    "c.jpeg_Sugar,\nc.jpeg_Gravel,\n")
    rows = labels.read_train_csv(path)
    problems = labels.check_complete(rows, path, labels.NOTEBOOK_CLASS_ORDER, tmp_path / "train_images",
                                     jpeg_names(tmp_path / "train_images"), tmp_path / "test_images", [])
    assert [str(p) for p in problems] == [
        f"{path} ('a.jpg'): no row for Flower, Gravel; read as not labelled there (train.csv has one row per class per "
        "image, EncodedPixels empty where there is none)",
        f"{tmp_path / 'train_images' / 'b.JPG'}: not in train.csv; left out of the audit",
        f"{tmp_path / 'test_images'}: no such folder; the test split is empty"]
    assert {p.check for p in problems} == {"dataset_complete"}
    (tmp_path / "test_images").mkdir()
    assert str(labels.check_complete(rows, path, ["Fish"], tmp_path / "train_images", ["a.jpg", "c.jpeg"],
                                     tmp_path / "test_images", [])[0]).endswith("no JPEG images; the test split is empty")
    assert labels.check_complete(rows, path, ["Fish"], tmp_path / "train_images", ["a.jpg"], tmp_path, ["t.jpg"]) == []


def test_spaces_around_a_label_are_named_with_the_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("Image_Label,EncodedPixels\n a.jpg_Fish,\n")
    problems = labels.check_rows(labels.read_train_csv(path), path, labels.NOTEBOOK_CLASS_ORDER, (10, 10))
    assert [str(p) for p in problems] == [f"{path} line 2 (' a.jpg_Fish'): Image_Label has spaces around it; remove them"]


def test_a_stray_quote_is_named_where_its_row_starts_and_blank_lines_and_a_trailing_comma_are_read(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("Image_Label,EncodedPixels\na.jpg_Fish,\n\"b.jpg_Fish,1 2\n" + "c.jpg_Fish,\n" * 50)
    with pytest.raises(labels.DatasetError, match=f"{path} line 3: not a readable CSV .a quote opened there is never"):
        labels.read_train_csv(path)
    path.write_text("\n  \nImage_Label,EncodedPixels,\na.jpg_Fish,1 2,\n   \nb.jpg_Fish,\n")
    rows = labels.read_train_csv(path)
    assert list(rows["Image_Label"]) == ["a.jpg_Fish", "b.jpg_Fish"] and list(rows["line"]) == [4, 6]
    path.write_text(" \n\n")
    with pytest.raises(labels.DatasetError, match="the file is empty; expected the header 'Image_Label' .and Line, opt"):
        labels.read_csv(path, ["Image_Label"], optional=["Line"])
