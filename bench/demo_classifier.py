"""The demo classifier's training, side by side in one run on the same dataset: as shipped (`cloud-assets
train`: 20 epochs, the first 70% at half the input size) and every epoch at the full size
(`--half-size 0`, the recipe before). Each runs as its own `cloud-assets train` process (the same
seed, TensorFlow's op determinism); the time is the process's wall time, images read included; the
quality is the kept epoch's mean PR-AUC on the validation split, which neither trains on.

    .venv/bin/python bench/demo_classifier.py [--data DIR] [--epochs 20]

The dataset defaults to the demo's (`var/demo-data`, written by `make demo`). Last line:
`bench demo_classifier: seconds=A seconds_full_size=B ratio=R pr_auc=P pr_auc_full_size=Q`
(ratio: B / A, the time every epoch at the full size takes against the shipped recipe).
"""
import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [str(ROOT / ".venv" / "bin" / "cloud-assets"), "train"]


def _train(data: Path, out: Path, epochs: int, half_size: str | None) -> tuple[float, float]:
    """(wall seconds, the kept epoch's mean val PR-AUC) of one `cloud-assets train`."""
    command = CLI + ["--data", str(data), "--out", str(out), "--epochs", str(epochs)]
    if half_size is not None:
        command += ["--half-size", half_size]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    best = re.search(r"train: best val PR-AUC .* mean=([0-9.]+)", done.stdout)
    assert best, done.stdout[-3000:]
    print(f"  {'as shipped' if half_size is None else '--half-size ' + half_size}: {seconds:.0f} s, "
          f"mean val PR-AUC {best.group(1)}", flush=True)
    return seconds, float(best.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "demo-data",
                        help="a dataset in the Kaggle layout (default var/demo-data, from make demo)")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    if not (args.data / "train.csv").is_file():
        sys.exit(f"{args.data / 'train.csv'}: not found; run make demo first, or pass --data DIR")
    with tempfile.TemporaryDirectory() as tmp:
        seconds, auc = _train(args.data, Path(tmp) / "shipped.keras", args.epochs, None)
        seconds_full, auc_full = _train(args.data, Path(tmp) / "full.keras", args.epochs, "0")
    print(f"bench demo_classifier: seconds={seconds:.0f} seconds_full_size={seconds_full:.0f} "
          f"ratio={seconds_full / seconds:.2f} pr_auc={auc:.3f} pr_auc_full_size={auc_full:.3f}")


if __name__ == "__main__":
    main()
