"""train.csv -> validated rows -> one row per image (`label_table`) -> the notebook's stratified split."""
from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cloud_assets.lib.data import rle
from cloud_assets.lib.store import Document, Table, Value

NOTEBOOK_CLASS_ORDER = ("Fish", "Flower", "Sugar", "Gravel")  # the notebook classifier's output order
csv.field_size_limit(2**31 - 1)  # an RLE of a full-size mask can pass the csv module's default 128 KiB a field


class DatasetError(ValueError):
    """Bad input data; the message names the file and the row or image."""


@dataclasses.dataclass(frozen=True)
class Problem:
    check: str       # which input check found it
    where: str       # file and row, or image
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def read_csv(path: Path, columns, error=DatasetError, optional=()) -> pd.DataFrame:
    """`columns` of the UTF-8 CSV file `path`, as strings, and those of `optional` (empty where the file
    lacks them), with a `line` column (the line of the file where each row starts; blank lines, and
    lines of spaces, skipped); `error` (naming the file, and the line where there is one) when it is not
    a file, cannot be read, is not UTF-8 or CSV, lacks a column, or has a row of more or fewer fields
    than its header (fields left empty past the header's, or past its last name, do not count)."""
    path = Path(path)
    values: list[list[str]] = []
    lines: list[int] = []
    ragged: list[str] = []
    ended = 0  # the line the last row read ends on

    def rows(reader):  # (the line each row starts on, its fields), blank ones left out
        nonlocal ended
        for fields in reader:
            line, ended = ended + 1, reader.line_num
            if any(v.strip() for v in fields):
                yield line, fields

    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = rows(csv.reader(f, strict=True))
            at, header = next(reader, (0, None))
            expected = f"'{','.join(columns)}'" + "".join(f" (and {c}, optional)" for c in optional)
            if header is None:
                raise error(f"{path}: not a readable CSV (the file is empty; expected the header {expected})")
            while header[-1] == "":  # a trailing comma
                header.pop()
            missing = [c for c in columns if c not in header]
            if missing:
                raise error(f"{path} line {at}: missing column(s) {', '.join(missing)}; expected header {expected}, "
                            f"found {header}{_separator_hint(header)}")
            columns = [*columns, *(c for c in optional if c in header)]
            wanted = [header.index(c) for c in columns]  # only these are kept in memory
            for line, fields in reader:
                if len(fields) < len(header) or any(fields[len(header):]):
                    ragged.append(f"line {line} has {len(fields)} field(s), the header {len(header)}")
                    continue
                values.append([fields[k] for k in wanted])
                lines.append(line)
    except IsADirectoryError:
        raise error(f"{path}: is a folder; expected a CSV file") from None
    except FileNotFoundError:
        raise error(f"{path}: not found; expected a CSV file") from None
    except UnicodeDecodeError:
        line, byte = _first_not_utf8(path)
        raise error(f"{path} line {line}: byte 0x{byte:02x} is not UTF-8; expected a UTF-8 CSV file (save it as "
                    f"UTF-8)") from None
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror})") from None
    except csv.Error as e:
        why = "a quote opened there is never closed" if "unexpected end of data" in str(e) else str(e)
        raise error(f"{path} line {ended + 1}: not a readable CSV ({why})") from None
    if ragged:
        more = f"; and {len(ragged) - 5} more" if len(ragged) > 5 else ""
        raise error(f"{path}: rows that do not fit the header '{','.join(header)}': {'; '.join(ragged[:5])}{more}")
    df = pd.DataFrame(values, columns=list(columns), dtype=object) if values else \
        pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    for c in optional:
        if c not in df:
            df[c] = ""
    df["line"] = np.asarray(lines, dtype=np.int64)
    return df


def _separator_hint(header: list[str]) -> str:
    """Why a header may lack the expected columns: another separator, or spaces around the names."""
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if len(header) == 1 and sep in header[0]:
            return f" (its fields are separated by {name}; save it comma-separated)"
    if any(c != c.strip() for c in header):
        return " (spaces around the column names)"
    return ""


def _first_not_utf8(path: Path) -> tuple[int, int]:
    """(line, byte) of the first byte of `path` that is not UTF-8; read again, on that error only."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return raw[:e.start].count(b"\n") + 1, raw[e.start]
    raise AssertionError(f"{path}: pandas found a byte that is not UTF-8, Python none")


def read_train_csv(path: Path) -> pd.DataFrame:
    """Read train.csv as strings, with a `line` column (the file's line number, header = 1)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: train.csv not found (expected a file with columns Image_Label,EncodedPixels)")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: empty file; expected the header 'Image_Label,EncodedPixels' and one row "
                           f"per class per image")
    df = read_csv(path, ["Image_Label", "EncodedPixels"])
    if df.empty:
        raise DatasetError(f"{path}: no rows after the header; expected one row per class per image")
    return df


def check_rows(df: pd.DataFrame, path: Path, class_names, shape) -> list[Problem]:
    """Every problem in train.csv's rows; `shape` is the images' (height, width) for RLE bounds."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    known = set(class_names)
    for label, enc, line in zip(df["Image_Label"], df["EncodedPixels"], df["line"]):
        where = f"{path} line {line} ({label!r})"
        image, sep, cls = label.rpartition("_")
        if label != label.strip():
            problems.append(Problem("train_csv_schema", where, "Image_Label has spaces around it; remove them"))
            continue
        if not sep or not image or not cls:
            problems.append(Problem("train_csv_schema", where, "Image_Label must be '<image>_<class>'"))
            continue
        if cls not in known:
            problems.append(Problem("train_csv_schema", where,
                                    f"unknown class {cls!r}; configured classes are {list(class_names)}"))
        if "/" in image or "\\" in image or image.startswith("."):
            problems.append(Problem("train_csv_schema", where, f"image name {image!r} is not a plain file name"))
        if label in seen:
            problems.append(Problem("train_csv_schema", where, f"duplicate of line {seen[label]}"))
        seen[label] = line
        if not rle.is_empty(enc):
            try:
                rle.parse(enc, shape)
            except rle.RLEError as e:
                problems.append(Problem("rle_valid", where, f"EncodedPixels: {e}"))
    return problems



def check_complete(df: pd.DataFrame, path: Path, class_names, train_dir: Path, train_images: Sequence[str],
                   test_dir: Path, test_images: Sequence[str]) -> list[Problem]:
    """What train.csv's rows (`df`, checked by `check_rows`) and the dataset's folders leave out
    (check `dataset_complete`, a warning: the audit runs on what there is): an image without a row
    for each class (read as not labelled there), a JPEG of `train_dir` that train.csv never names (left
    out), and no JPEG in `test_dir` (no test split)."""
    problems: list[Problem] = []
    parts = df["Image_Label"].str.rpartition("_")
    listed = parts.groupby(0, sort=False)[2].agg(set)
    for image, classes in listed.items():
        missing = [c for c in class_names if c not in classes]
        if missing and image:
            problems.append(Problem("dataset_complete", f"{path} ({image!r})",
                                    f"no row for {', '.join(missing)}; read as not labelled there (train.csv has "
                                    f"one row per class per image, EncodedPixels empty where there is none)"))
    for name in sorted(set(train_images) - set(listed.index)):
        problems.append(Problem("dataset_complete", str(Path(train_dir) / name),
                                "not in train.csv; left out of the audit"))
    if not test_images:
        what = "no JPEG images" if Path(test_dir).is_dir() else "no such folder"
        problems.append(Problem("dataset_complete", str(test_dir), f"{what}; the test split is empty"))
    return problems

def label_table(df: pd.DataFrame, class_names) -> pd.DataFrame:
    """One row per image, sorted by name: `image`, `classes` (present classes, sorted, ';'-joined),
    `n_labels`, then one 0/1 int8 column per class in the model's order `class_names`.

    An image's class is present when its EncodedPixels is non-empty. Images whose rows are all
    empty are kept with no class (the notebook drops them; the real data has none).
    """
    parts = df["Image_Label"].str.rpartition("_")
    long = pd.DataFrame({"image": parts[0], "class": parts[2], "present": df["EncodedPixels"].str.strip() != ""})
    table = pd.DataFrame({"image": sorted(long["image"].unique())})
    present = long[long["present"]]
    for cls in class_names:
        table[cls] = table["image"].isin(present.loc[present["class"] == cls, "image"]).astype(np.int8)
    onehot = table[list(class_names)].to_numpy()
    table.insert(1, "classes", [";".join(sorted(np.asarray(class_names)[row == 1])) for row in onehot])
    table.insert(2, "n_labels", onehot.sum(axis=1))
    return table


def stratified_split(table: pd.DataFrame, test_size: float = 0.2, random_state: int = 10):
    """The notebook's split: train_test_split of the image names, stratified by label combination.

    The notebook's key is `str(sorted(list(classes)))`. Where scikit-learn cannot stratify by it
    (a combination held by one image, or more combinations than validation images: small data,
    never the real data) combinations held by one image are pooled, then the number of labels is
    used, then no stratification.
    """
    from sklearn.model_selection import train_test_split

    combos = [str(sorted(c.split(";"))) if c else "[]" for c in table["classes"]]
    counts = Counter(combos)
    pooled = [k if counts[k] > 1 else "rare" for k in combos]
    if pooled.count("rare") == 1:
        pooled = [counts.most_common(1)[0][0] if k == "rare" else k for k in pooled]
    images = np.asarray(table["image"], dtype=object)
    n_labels = [len(c.split(";")) if c else 0 for c in table["classes"]]
    for key in (combos, pooled, n_labels, None):
        try:
            train, val = train_test_split(images, test_size=test_size, stratify=key, random_state=random_state)
            return list(train), list(val)
        except ValueError:
            continue
    raise AssertionError("unreachable: an unstratified split always succeeds")


class LabelTable(Value):
    """`label_table`: one row per image of train.csv, its classes one-hot in the model's order."""
    labels = Table()    # image, n_labels, one column per class
    rows = Table()      # train.csv's rows: Image_Label, EncodedPixels
    meta = Document()   # class_names, original_shape


class TrainValSplit(Value):
    """`train_val_split`: the notebook's split."""
    split = Table()     # image, split ("train" or "val")
