"""`cloud-assets train`: the demo classifier at the input size it is asked for, its first epochs at
half that size when asked."""
import pytest

from cloud_assets import cli


@pytest.mark.e2e
def test_train_writes_a_model_of_the_requested_input_size(small_dataset, tmp_path, capsys):
    out = tmp_path / "m.keras"
    assert cli.main(["train", "--data", str(small_dataset), "--out", str(out), "--size", "64x96",
                     "--epochs", "2", "--half-size", "1"]) == 0
    printed = capsys.readouterr().out
    assert "train: saved" in printed
    # the first epoch at half the size, never the one kept; the last always at the full size
    first, second = (line for line in printed.splitlines() if line.startswith("train: epoch "))
    assert first.endswith("(at 32x48)") and second.endswith("(best, kept)"), printed
    from cloud_assets.lib.classifier import model as model_lib

    net = model_lib.load(out)
    assert tuple(net.inputs[0].shape) == (None, 64, 96, 3)
    assert model_lib.check(net, out, 4, (64, 96)).input_size == (64, 96)
    with pytest.raises(model_lib.ModelError, match="set dataset.input_size to 64x96"):
        model_lib.check(net, out, 4, (224, 224))


def test_train_refuses_a_malformed_size(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m.keras"), "--size", "64by96"])
    assert "'64by96': expected HEIGHTxWIDTH" in capsys.readouterr().err
