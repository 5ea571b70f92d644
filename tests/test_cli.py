"""Every `cloud-assets` command that writes checks its arguments first and writes under a temporary
name renamed at the end: a bad argument or a failure leaves the previous result, or nothing."""
import json
import shutil

import pytest

from cloud_assets import cli
from cloud_assets.synth import dataset as synth_dataset


@pytest.mark.parametrize("argv,message", [
    (["synth", "--train", "0"], "argument --train: '0': expected a whole number, at least 1"),
    (["synth", "--test", "-1"], "argument --test: '-1': expected a whole number, at least 0"),
    (["synth", "--height", "8"], "argument --height: '8': expected a whole number, at least 32"),
    (["synth", "--width", "wide"], "argument --width: 'wide': expected a whole number, at least 32"),
    (["synth", "--seed", "-3"], "argument --seed: '-3': expected a whole number, at least 0"),
    (["synth", "--twin-rate", "1.5"], "argument --twin-rate: '1.5': expected a share between 0 and 1"),
    (["renoise", "--data", "d", "--noise", "classic", "--seed", "x"], "argument --seed: 'x': expected a whole number"),
    (["train", "--data", "d", "--epochs", "0"], "argument --epochs: '0': expected a whole number, at least 1"),
    (["train", "--data", "d", "--half-size", "1.5"], "argument --half-size: '1.5': expected a share between 0 and 1"),
    (["train", "--data", "d", "--minutes", "0"], "argument --minutes: '0': expected a number, at least 0.1"),
])
def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        cli.main([*argv, "--out", str(out)])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,message", [
    (["train", "--data", "{data}", "--out", "{tmp}/model.h5"], "model.h5: expected the name of a .keras file to write"),
    (["train", "--data", "{tmp}/none", "--out", "{tmp}/m.keras"], "train.csv not found"),
    (["convert-model", "{tmp}/a.h5", "{tmp}/none/b.keras"], "no such folder to write the converted model in"),
    (["renoise", "--data", "{data}", "--out", "{tmp}/n", "--noise", "missing=2"], "missing=2"),
    (["synth", "--out", "{tmp}/file.txt"], "file.txt: is a file; expected a folder to write"),
])
def test_bad_paths_and_values_are_named_and_nothing_is_written(small_dataset, tmp_path, capsys, argv, message):
    (tmp_path / "file.txt").write_text("mine")
    argv = [a.format(data=small_dataset, tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    said = capsys.readouterr()
    assert message in said.err and "writing" not in said.out  # refused before it says it writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    assert (tmp_path / "file.txt").read_text() == "mine"


def _synth(out, *extra):
    return cli.main(["synth", "--out", str(out), "--train", "6", "--test", "2", "--height", "64", "--width", "96",
                     "--workers", "1", *extra])


def test_a_failed_synth_leaves_the_previous_dataset_and_no_temporary_folder(tmp_path, monkeypatch):
    out = tmp_path / "data"
    assert _synth(out) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    written = []

    def fail_on_the_third(job, write=synth_dataset._write_image):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(job)
        return write(job)

    monkeypatch.setattr(synth_dataset, "_write_image", fail_on_the_third)
    assert _synth(out, "--seed", "1") == 2
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    shutil.rmtree(out)
    written.clear()
    assert _synth(out, "--seed", "1") == 2 and list(tmp_path.iterdir()) == []  # none before: none after


def test_synth_and_renoise_refuse_to_replace_a_folder_holding_what_they_did_not_write(tmp_path, capsys):
    out = tmp_path / "data"
    assert _synth(out) == 0
    (out / "label_review.csv").write_text("a reviewer's work\n")
    assert _synth(out) == 2
    assert "holds label_review.csv, which this command did not write" in capsys.readouterr().err
    assert _synth(tmp_path / "other") == 0
    assert cli.main(["renoise", "--data", str(tmp_path / "other"), "--out", str(out), "--noise", "classic"]) == 2
    assert "holds label_review.csv, which this command did not write" in capsys.readouterr().err
    assert (out / "label_review.csv").read_text() == "a reviewer's work\n"
    # a dataset renoise wrote itself is replaced
    assert cli.main(["renoise", "--data", str(out), "--out", str(tmp_path / "noisy"), "--noise", "classic"]) == 0
    assert cli.main(["renoise", "--data", str(out), "--out", str(tmp_path / "noisy"), "--noise", "boxes"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "noisy", "other"]


@pytest.mark.e2e
def test_a_failed_training_leaves_the_previous_model(small_dataset, tmp_path, monkeypatch):
    from cloud_assets.synth import classifier

    out = tmp_path / "m.keras"
    out.write_bytes(b"the previous model")

    def stop_after_the_first_epoch(message):
        if message.startswith("train: epoch 1:"):
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        classifier.train(small_dataset, out, size=(32, 48), epochs=3, log=stop_after_the_first_epoch)
    assert out.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_score_review_counts_the_decisions_that_name_injected_errors(small_dataset, tmp_path, capsys):
    import pandas as pd

    noise = pd.read_csv(small_dataset / "label_noise.csv", dtype=str, keep_default_na=False)
    first, second = noise.iloc[0], noise.iloc[1]
    review = tmp_path / "label_review.csv"
    review.write_text("image,class,decision,new_class,score,kind,reviewed_at\n"
                      f"{first['image']},{first['class']},accept,,0.9,missing label,2026-12-01T00:00:00Z\n"
                      f"{second['image']},{second['class']},reject,,0.8,loose mask,2026-12-01T00:00:00Z\n")
    assert cli.main(["score-review", "--data", str(small_dataset), "--review", str(review)]) == 0
    out = capsys.readouterr().out
    assert f"1 of the 1 accepted decisions name one of the {len(noise)} injected errors" in out
    assert "1 of the 1 rejected ones do" in out
    assert cli.main(["score-review", "--data", str(tmp_path)]) == 2
    assert "label_noise.csv: not found" in capsys.readouterr().err


def test_review_names_a_bad_file_and_leaves_the_dataset_s_review(dataset_copy, tmp_path, monkeypatch, capsys):
    """`cloud-assets review FILE` (make review REVIEW=FILE): a file that does not read is named with its
    line and the review in the dataset folder stays; a good one is put there."""
    monkeypatch.setenv("CLOUD_ASSETS_DATA_DIR", str(dataset_copy))
    monkeypatch.setenv("CLOUD_ASSETS_VAR_DIR", str(tmp_path / "var"))  # no store yet: read against train.csv
    monkeypatch.delenv("CLOUD_ASSETS_REVIEW_PATH", raising=False)
    image = (dataset_copy / "train.csv").read_text().splitlines()[1].split("_")[0]
    header = "image,class,decision,new_class,score,kind,reviewed_at\n"
    there = dataset_copy / "label_review.csv"
    there.write_text(header + f"{image},Fish,reject,,0.9,spurious label,2026-12-01T00:00:00Z\n")
    before = there.read_bytes()
    bad = tmp_path / "Downloads" / "label_review.csv"
    bad.parent.mkdir()
    bad.write_text(header + f"{image},Fish,maybe,,0.9,spurious label,2026-12-01T00:00:00Z\n")
    assert cli.main(["review", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} line 2: decision 'maybe'" in err and f"{there} is left as it was" in err
    assert there.read_bytes() == before
    bad.write_text(header + f"{image},Fish,accept,,0.9,spurious label,2026-12-01T00:00:00Z\n")
    assert cli.main(["review", str(bad)]) == 0
    assert there.read_bytes() == bad.read_bytes() and f"placed at {there}" in capsys.readouterr().out


def test_launch_adds_its_console_logger_to_a_run_config_and_refuses_a_config_file():
    from cloud_assets import launch

    fewer = {"ops": {"corrected_labels": {"config": {"allow_fewer_changes": True}}}}
    args, config = launch._run_config(["--assets", "corrected_labels", "--config-json", json.dumps(fewer)])
    assert args == ["--assets", "corrected_labels"] and config == {**fewer, **launch.QUIET}
    assert launch._run_config(["--job", "observe_sources"]) == (["--job", "observe_sources"], launch.QUIET)
    assert launch._run_config(["--config-json=" + json.dumps(fewer)]) == ([], {**fewer, **launch.QUIET})
    for bad, message in ((["--config-json", "{ops"], "not JSON"), (["--config-json", "[1]"], "a JSON object"),
                         (["--config-json", "{}", "--config-json={}"], "given twice"),
                         (["-c", "run.yaml"], "run dg launch directly for a config file")):
        with pytest.raises(ValueError, match=message):
            launch._run_config(bad)
