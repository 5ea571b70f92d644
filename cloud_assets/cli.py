"""`cloud-assets` console script. Arguments are checked before anything is written, and every
command writes its folder or file under a temporary name renamed at the end: a failure leaves the
previous result, or nothing."""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
import sys

from cloud_assets.lib.data.labels import NOTEBOOK_CLASS_ORDER

MIN_SIDE = 32  # the smallest synthetic image side whose patterns are still regions of texture


def _synth(args) -> int:
    from cloud_assets.synth import SynthConfig, synthesize

    cfg = SynthConfig(train=args.train, test=args.test, height=args.height, width=args.width, seed=args.seed,
                      workers=args.workers, twin_rate=args.twin_rate)
    summary = synthesize(args.out, cfg, progress=lambda m: print(m, flush=True))
    print(f"synth: done in {summary['seconds']:.0f}s; {summary['noisy_labels']} injected label errors "
          f"(label_noise.csv); mean JPEG {summary['mean_jpeg_kb']:.0f} KB")
    return 0


def _renoise(args) -> int:
    from cloud_assets.synth.noise import renoise_dataset

    manifest = renoise_dataset(args.data, args.out, args.noise, args.seed)
    counts = ", ".join(f"{k} {n}" for k, n in manifest["kind"].value_counts().sort_index().items())
    print(f"renoise: wrote {args.out}: {len(manifest)} label errors ({counts or 'none'}) in label_noise.csv")
    return 0


def _logs() -> Path:
    """Where the commands' logs go: $CLOUD_ASSETS_VAR_DIR/logs (var/logs without it)."""
    from cloud_assets.settings import Settings

    return Path(Settings.from_env(os.environ).var_dir) / "logs"


@contextlib.contextmanager
def _native_stderr_to(path: Path):
    """Appends what native code writes to file descriptor 2 (TensorFlow's C++ lines, printed before its
    logging starts) to `path`; Python's sys.stderr (warnings, errors) still reaches the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 2)
    saved, sys.stderr = sys.stderr, open(terminal, "w", buffering=1, closefd=False)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)
        os.close(terminal)
        sys.stderr = saved


def _train(args) -> int:
    from cloud_assets.synth.classifier import train

    classes = [c.strip() for c in args.classes.split(",")]
    log = _logs() / "train.log"
    print(f"train: TensorFlow's own console in {log}")
    with _native_stderr_to(log):
        options = {} if args.half_size is None else {"half_size": args.half_size}
        train(args.data, args.out, class_names=classes, size=args.size, epochs=args.epochs, minutes=args.minutes,
              log=lambda m: print(m, flush=True), **options)
    return 0


def _convert_model(args) -> int:
    from cloud_assets.lib.classifier.model import convert

    diff = convert(args.src, args.dst, safe_mode=not args.unsafe)
    print(f"convert-model: wrote {args.dst}; its predictions equal those of {args.src} "
          f"(largest difference {diff:.1e}); it loads on every Keras 3 backend")
    return 0


def _device(args) -> int:
    from cloud_assets.lib.classifier.model import configure_device

    print(configure_device())
    return 0


def _launch(args) -> int:
    from cloud_assets.launch import launch

    dg_args = args.dg_args
    if not dg_args:
        raise ValueError("give dg launch's arguments, e.g. cloud-assets launch --assets 'not group:audit+'")
    log = args.log or _logs() / "dg-launch.log"
    return launch(dg_args, log)


def _run(args) -> int:
    from cloud_assets.launch import run

    return run(args.log or _logs() / "dg-launch.log")


def _ui(args) -> int:
    from cloud_assets.launch import ui

    return ui(args.host, args.port)


def _review(args) -> int:
    from cloud_assets.defs.resources import build_resources
    from cloud_assets.lib import review
    from cloud_assets.lib.audit.label_issues import LabelIssues
    from cloud_assets.lib.data import labels
    from cloud_assets.lib.files import sha256
    from cloud_assets.settings import Settings

    resources = build_resources(Settings.from_env(os.environ))
    dataset, var = resources["dataset"], resources["var"]
    to = dataset.review_file
    if var.store.stored("label_table") and var.store.stored("label_issues"):
        table = labels.LabelTable(var.store.get("label_table"))
        train, shape = table.rows, tuple(table.meta["original_shape"])
        issues = LabelIssues(var.store.get("label_issues")).issues
        previous = review.latest(Path(var.path) / review.CORRECTIONS, sha256(dataset.train_csv))
        against = "as corrected_labels will apply it (the labels and ranking of the last run, the latest corrections)"
    else:
        train, shape, issues, previous = labels.read_csv(dataset.train_csv, ["Image_Label"]), None, None, None
        against = "against train.csv (no ranking yet to check its fixes against)"
    try:
        n, placed = review.place(args.file, train, issues, dataset.class_names, shape, previous, to, args.fewer)
    except review.ReviewError as e:
        fewer = " (--fewer, make review FEWER=1: apply it on purpose)" if isinstance(e, review.FewerChanges) else ""
        raise ValueError(f"{e}{fewer}\n{to} is left as it was") from None
    print(f"review: {args.file}: {n} decisions, checked {against}; " + (f"placed at {to}" if placed else "read there"))
    return 0


def _validate(args) -> int:
    from cloud_assets.launch import validate

    return validate()


def _score_review(args) -> int:
    import pandas as pd

    from cloud_assets.eval.scoring import review_matches
    from cloud_assets.lib import review
    from cloud_assets.lib.data import labels

    noise = args.data / "label_noise.csv"
    if not noise.is_file():
        raise ValueError(f"{noise}: not found; score-review scores a synthetic dataset against its injected errors")
    train = labels.read_csv(args.data / "train.csv", ["Image_Label"])["Image_Label"].str.rpartition("_")
    path = args.review or args.data / "label_review.csv"
    m = review_matches(review.read(path, set(train[0]), sorted(set(train[2]))),
                       pd.read_csv(noise, dtype=str, keep_default_na=False))
    print(f"score-review: {path}: {m['accepted_injected']} of the {m['accepted']} accepted decisions name one of the "
          f"{m['injected']} injected errors ({m['accepted_injected_same_kind']} with the kind that undoes it); "
          f"{m['rejected_injected']} of the {m['rejected']} rejected ones do")
    return 0


def _instance(args) -> int:
    from cloud_assets import instance

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("DAGSTER_HOME is not set: it names the instance's folder")
    if args.existing:
        if not (Path(home) / "dagster.yaml").is_file():
            raise ValueError(f"{Path(home) / 'dagster.yaml'}: not found; --existing uses the instance's own dagster.yaml")
        print(f"Dagster instance in {home}: {instance.create_pool(Path(home))}")
    else:
        if not args.template.is_file():
            raise ValueError(f"{args.template.absolute()}: not found; run cloud-assets instance in the project's folder "
                             f"(its dagster.yaml) or name the instance settings with --template FILE")
        print(f"Dagster instance: {instance.write(Path(home), args.template)}")
    return 0


def _at_least(minimum: float, kind=int):
    """An argparse type: a number of `kind` at least `minimum`."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a {'whole ' if kind is int else ''}number, "
                                             f"at least {minimum:g}")
        return value
    return parse


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a share between 0 and 1")
    return value


def _size(text: str) -> tuple[int, int]:
    from cloud_assets.lib.data.images import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloud-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synth", help="write a synthetic dataset in the Kaggle layout, with label_noise.csv")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("--train", type=_at_least(1), default=5546, help="labelled images (default 5546, the real count)")
    p.add_argument("--test", type=_at_least(0), default=3698, help="unlabelled images (default 3698)")
    p.add_argument("--height", type=_at_least(MIN_SIDE), default=1400)
    p.add_argument("--width", type=_at_least(MIN_SIDE), default=2100)
    p.add_argument("--seed", type=_at_least(0), default=0)
    p.add_argument("--workers", type=_at_least(0), default=0, help="processes (default: one per core)")
    p.add_argument("--twin-rate", type=_share, default=0.0,
                   help="share of patterns drawn as two separate patches of their class (default 0)")
    p.set_defaults(func=_synth)
    p = sub.add_parser("renoise", help="copy a synthetic dataset with its labels re-noised from train_clean.csv")
    p.add_argument("--data", required=True, help="a folder cloud-assets synth wrote")
    p.add_argument("--out", required=True, help="dataset folder to write (images are hard links)")
    p.add_argument("--noise", required=True, metavar="SPEC",
                   help="a mix (classic, boxes, crowd, all) or kind=rate[:lo-hi],... with kinds missing, "
                        "spurious, swapped, shifted, wide, small, merged")
    p.add_argument("--seed", type=_at_least(0), default=0)
    p.set_defaults(func=_renoise)
    p = sub.add_parser("train", help="train the demo classifier on a dataset's train split")
    p.add_argument("--data", required=True, help="dataset folder in the Kaggle layout")
    p.add_argument("--out", required=True, help="model file to write (.keras)")
    p.add_argument("--classes", default=",".join(NOTEBOOK_CLASS_ORDER), help="output order (default: the notebook's)")
    p.add_argument("--size", type=_size, default=(224, 224), metavar="HxW",
                   help="model input, height x width (default 224x224; the pipeline needs the same "
                        "CLOUD_ASSETS_INPUT_SIZE)")
    p.add_argument("--epochs", type=_at_least(1), default=20)
    p.add_argument("--half-size", type=_share, default=None, metavar="SHARE",
                   help="the share of the epochs, the first ones, at half the input size: each costs about a fifth "
                        "of one at the full size; the last epoch is at the full size (default 0.7: 14 of 20)")
    p.add_argument("--minutes", type=_at_least(0.1, float), default=None,
                   help="stop before an epoch would pass this budget (default: none, every epoch runs)")
    p.set_defaults(func=_train)
    p = sub.add_parser("convert-model", help="write a Keras 3 .keras copy of a Keras 2 .h5 model, for every backend")
    p.add_argument("src", help="the model file (.h5 written by Keras 2, or .keras)")
    p.add_argument("dst", help="the .keras file to write")
    p.add_argument("--unsafe", action="store_true", help="allow Lambda layers, whose stored code runs on loading")
    p.set_defaults(func=_convert_model)
    p = sub.add_parser("launch", usage="cloud-assets launch [--log FILE] DG_LAUNCH_ARGS (--assets SELECTION or --job NAME, "
                                       "--partition-range, --config-json JSON; not a config file)",
                       help="dg launch, its console to a log file; the terminal shows progress and errors")
    p.add_argument("--log", type=Path, default=None,
                   help="file the run's console is appended to (default $CLOUD_ASSETS_VAR_DIR/logs/dg-launch.log)")
    p.set_defaults(func=_launch)
    p = sub.add_parser("run", help="observe the dataset, the model file and the review, then materialize every asset "
                                   "that is stale or missing (make run); a backfill for the daemon under Celery or "
                                   "Kubernetes")
    p.add_argument("--log", type=Path, default=None,
                   help="file the runs' console is appended to (default $CLOUD_ASSETS_VAR_DIR/logs/dg-launch.log)")
    p.set_defaults(func=_run)
    p = sub.add_parser("ui", help="the Dagster UI and daemon (dagster dev) on this project, started in a folder of its "
                                  "own so that no .env overrides the environment (make ui)")
    p.add_argument("--host", default="127.0.0.1", help="the address the webserver listens on (default loopback only)")
    p.add_argument("--port", type=int, default=3000, help="the webserver's port (default 3000)")
    p.set_defaults(func=_ui)
    p = sub.add_parser("review", help="check a reviewer's label_review.csv as corrected_labels reads it, against "
                                      "train.csv and the audit's last ranking, then put it where corrected_labels "
                                      "reads it (make review); a file that does not apply leaves the one there")
    p.add_argument("file", type=Path, help="the review file the report's Label issues page downloaded")
    p.add_argument("--fewer", action="store_true", help="a review that gives fewer label changes than the latest "
                                                        "corrections too (they stay in corrections/)")
    p.set_defaults(func=_review)
    p = sub.add_parser("validate", help="dagster definitions validate on this project, started as run and launch start "
                                        "dg (make definitions)")
    p.set_defaults(func=_validate)
    p = sub.add_parser("score-review", help="on a synthetic dataset: how many of a review's decisions name an "
                                            "injected error (label_noise.csv)")
    p.add_argument("--data", type=Path, required=True, help="a folder cloud-assets synth or renoise wrote")
    p.add_argument("--review", type=Path, default=None, help="the review (default: label_review.csv in --data)")
    p.set_defaults(func=_score_review)
    p = sub.add_parser("instance", help="write $DAGSTER_HOME/dagster.yaml: SQLite there, or PostgreSQL with "
                                        "CLOUD_ASSETS_POSTGRES_URL or DAGSTER_POSTGRES_*; create the gpu pool's limit "
                                        "(a limit set by hand is kept)")
    p.add_argument("--template", type=Path, default=Path("dagster.yaml"),
                   help="the project's instance settings (default ./dagster.yaml)")
    p.add_argument("--existing", action="store_true",
                   help="leave $DAGSTER_HOME/dagster.yaml as it is (a deployment's, e.g. the Helm chart's) and only "
                        "create the gpu pool's limit")
    p.set_defaults(func=_instance)
    p = sub.add_parser("device", help="print the Keras backend (KERAS_BACKEND) and the device it computes on")
    p.set_defaults(func=_device)
    args, extra = parser.parse_known_args(argv)  # launch passes the arguments it does not know to dg launch
    if extra and args.command != "launch":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.dg_args = extra
    try:
        return args.func(args)
    except (ValueError, OSError) as e:
        print(f"cloud-assets {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
