"""Full scale on one machine: the real dataset's size (5546 labelled + 3698 test images at
1400x2100) end to end through `dagster asset materialize`, as a user runs it.

1. Synthesizes the full-size dataset once (cached in bench/.cache/full/data, about 11 minutes on
   2 cores) and a half-size one from it (hard links); reuses the demo classifier (`make demo`'s,
   trained here if missing).
2. Times a cold materialization of the assets before the fold audit at half and at full size, the
   same at full size in 4 shards (`CLOUD_ASSETS_SHARDS=4`, every shard in the one run), the fold
   audit at full size (every fold in one run), every label ranked with the corrections and the
   site (and the site's size), then, at full size, a re-run of the model-dependent assets after the
   model file changes; samples the memory of the
   run's processes (the CLI, the fork server, the step processes) every 0.2 s.
3. Measures, on samples of the same data and model in the same run, what the reference notebook's
   dominant steps cost per unit (`cv2.resize(cv2.imread(...))` of every image it reads, its
   per-mask `make_mask`, its per-class saliency) and scales them to the full dataset.

Prints wall time per step, images per second for the image cache and the model pass (predictions
and saliency maps), and the peak memory; last line:
`bench full_scale: cold_s=T rerun_s=R rerun_vs_cold=Q peak_rss_gib=M sharded_s=S sharded_vs_one=X sharded_step_rss_gib=A
step_rss_gib=B audit_s=F ranked_s=K site_mib=W`.

`--profiles fast,strong [--folds 0,1]`: only the cold run at full size, then the fold audit (every
fold, or the first round of the folds named, in one run) once per audit profile, one after the other,
with every fold followed by the ranking and the site; prints per profile the audit's wall time, its U-Net epochs
and training rate (images/s) and peak memory; last line
`bench full_scale profiles: folds=N fast_s=A strong_s=B strong_vs_fast=R`.
"""
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cloud_assets.settings import Settings  # noqa: E402

MODEL = ROOT / "var" / "demo-model.keras"  # the demo classifier; `make` trains it when missing
CACHE = ROOT / "bench" / ".cache" / "full"
FULL, HALF = CACHE / "data", CACHE / "half-data"
DAGSTER = str(Path(sys.executable).parent / "dagster")
MODEL_DEPENDENT = "val_predictions*,saliency_maps*"
SHARDS = 4
FOLD_KEYS = Settings.from_env(os.environ).fold_keys


def ensure_data() -> None:
    if not (FULL / "train.csv").exists():
        shutil.rmtree(FULL, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "cloud_assets.cli", "synth", "--out", str(FULL)], check=True)
    if not (HALF / "train.csv").exists():
        shutil.rmtree(HALF, ignore_errors=True)
        rows = pd.read_csv(FULL / "train.csv", dtype=str, keep_default_na=False)
        images = sorted(rows["Image_Label"].str.rpartition("_")[0].unique())
        keep = set(images[: len(images) // 2])
        for split, names in (("train_images", keep),
                             ("test_images", sorted(p.name for p in (FULL / "test_images").iterdir())[::2])):
            (HALF / split).mkdir(parents=True)
            for name in names:
                os.link(FULL / split / name, HALF / split / name)
        rows[rows["Image_Label"].str.rpartition("_")[0].isin(keep)].to_csv(HALF / "train.csv", index=False)


class MemorySampler(threading.Thread):
    """Peak over time of the summed RSS and PSS (shared pages split between the processes that
    map them) of a process and all its descendants, and each process's own peak RSS."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak_rss, self.peak_pss, self.per_pid = pid, threading.Event(), 0, 0, {}

    def run(self):
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:  # it ended before the first sample
            return
        while not self.stop.is_set():
            rss, pss = {}, 0
            for proc in [root, *root.children(recursive=True)]:
                try:
                    mem = proc.memory_full_info()  # rss, and pss from smaps_rollup
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                rss[proc.pid], pss = mem.rss // 1024, pss + mem.pss // 1024
            for p, kib in rss.items():
                self.per_pid[p] = max(self.per_pid.get(p, 0), kib)
            self.peak_rss = max(self.peak_rss, sum(rss.values()))
            self.peak_pss = max(self.peak_pss, pss)
            time.sleep(0.2)


def materialize(data: Path, model: Path, work: Path, select: str = "not group:audit+", shards: int = 1,
                partitions: list[str] | None = None, env: dict | None = None) -> dict:
    """One `dagster asset materialize` on a SQLite DAGSTER_HOME under `work`, every shard of the
    per-image assets in the one run when `shards` > 1 (every key of `partitions` when given), with
    the variables `env` set besides; wall time, peak memory and per-step times from Dagster's event log."""
    from cloud_assets.lib.shards import keys

    import dagster as dg

    partitions = partitions or (keys(shards) if shards > 1 else None)
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CLOUD_ASSETS_DATA_DIR": str(data),
           "CLOUD_ASSETS_MODEL_PATH": str(model), "CLOUD_ASSETS_VAR_DIR": str(work / "var"),
           "CLOUD_ASSETS_SHARDS": str(shards), **(env or {})}
    extra = ["--partition-range", f"{partitions[0]}...{partitions[-1]}"] if partitions else []
    start = time.monotonic()
    with open(work / "run.log", "a") as log:
        proc = subprocess.Popen([DAGSTER, "asset", "materialize", "-m", "cloud_assets.definitions", "--select", select,
                                 *extra], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop.set()
    wall = time.monotonic() - start
    if rc != 0:
        raise SystemExit(f"bench full_scale: the run failed; see {work / 'run.log'}")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        steps, meta, step_rss = {}, {}, {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or not event.step_key:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                steps[event.step_key] = [record.timestamp, None]
                step_rss[event.step_key] = sampler.per_pid.get(event.pid, 0) / 2 ** 20
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                steps[event.step_key][1] = record.timestamp
            elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                metadata = event.step_materialization_data.materialization.metadata
                meta[event.asset_key.to_user_string()] = {k: v.value for k, v in metadata.items()}
    return {"wall_s": wall, "peak_rss_gib": sampler.peak_rss / 2 ** 20, "peak_pss_gib": sampler.peak_pss / 2 ** 20,
            "steps": {k: b - a for k, (a, b) in steps.items() if b}, "step_rss_gib": step_rss, "meta": meta}


def change_model(src: Path, dst: Path) -> None:
    """A new model file: the same network with its output bias nudged (a new SHA-256)."""
    import keras

    net = keras.models.load_model(src, compile=False)
    weights = net.layers[-1].get_weights()
    weights[-1] = weights[-1] + 1e-3
    net.layers[-1].set_weights(weights)
    net.save(dst)


def notebook_costs(data: Path, model: Path, n_val: int, n_all: int) -> dict:
    """Seconds the notebook's dominant steps would take on the full dataset, from per-unit costs
    measured here on samples: every image it reads (the dark count reads all train and test
    images, prediction and saliency each read the validation images again), every val mask
    (`make_mask`, re-indexing the whole table), and its per-class saliency."""
    import cv2

    from cloud_assets.lib.classifier import model as model_lib
    from cloud_assets.lib.saliency.engine import Engine
    from saliency import notebook_batch
    from cloud_assets.eval.notebook import make_mask

    paths = sorted((data / "train_images").iterdir())[:24]
    start = time.perf_counter()
    for p in paths:
        cv2.resize(cv2.imread(str(p)), (224, 224)).astype(np.float32)
    imread_s = (time.perf_counter() - start) / len(paths)

    table = pd.read_csv(data / "train.csv")
    labels = table["Image_Label"].tolist()[:40]
    start = time.perf_counter()
    for label in labels:
        make_mask(table, label)
    mask_s = (time.perf_counter() - start) / len(labels)

    net = model_lib.load(model)
    layer = model_lib.gradcam_layer(net)
    images = np.stack([cv2.resize(cv2.imread(str(p)), (224, 224)) for p in paths[:16]]).astype(np.float32) / 255
    engine = Engine(net, layer)
    notebook_batch(net, engine, images[:8])  # warm-up at the same batch shape
    start = time.perf_counter()
    notebook_batch(net, engine, images[8:16])
    saliency_s = (time.perf_counter() - start) / 8
    return {"imread": imread_s * (n_all + 2 * n_val), "make_mask": mask_s * 4 * n_val, "saliency": saliency_s * n_val}


def training_rate(work: Path, folds: list[str]) -> tuple[float, int]:
    """(images per second, epochs) of the fold U-Nets' training in the store under `work`: the
    images each of `folds` trained on times its epochs, over the seconds of those epochs."""
    from cloud_assets.lib.store import Store

    store, images, seconds, epochs = Store(work / "var" / "store"), 0, 0.0, 0
    for key in folds:
        model = store.get(f"audit_models@{key}")
        history = model.table("history")
        unet = history[history["network"] == "unet"] if "network" in history else history
        images += model.json("meta")["training_images"] * len(unet)
        seconds, epochs = seconds + unet["seconds"].sum(), epochs + len(unet)
    return images / seconds, epochs


def profiles(names: list[str], folds: list[str], model: Path, runs: Path) -> None:
    """The fold audit at full size once per audit profile (CLOUD_ASSETS_AUDIT_PROFILE), one after the
    other on one cold run of the assets before it (a profile re-runs the whole audit: its inputs are
    at the profile's size), for the fold keys `folds` (with some folds, their first round; with every fold,
    both rounds, then the evidence, every label ranked and the site)."""
    work, every_fold = runs / "full", folds == FOLD_KEYS
    print("bench full_scale: cold run at full size ...", flush=True)
    cold = materialize(FULL, model, work)
    print(f"the assets before the audit, cold: {cold['wall_s']:.0f} s; {os.cpu_count()} CPUs", flush=True)
    walls = {}
    for name in names:
        env = {"CLOUD_ASSETS_AUDIT_PROFILE": name}
        print(f"bench full_scale: the fold audit at full size, profile {name}, folds {','.join(folds)} ...", flush=True)
        # the second round's labels, and so its predictions and the evidence, read every fold's first round:
        # with some folds, their first round only
        select = "group:audit and not key:label_issues" + (
            "" if every_fold else " and not key:audit_relabels and not key:audit_predictions and not key:audit_evidence")
        audit = materialize(FULL, model, work, select=select, partitions=folds, env=env)
        ranked = materialize(FULL, model, work, select="label_issues+", env=env)["wall_s"] if every_fold else None
        rate, epochs = training_rate(work, folds)
        walls[name] = audit["wall_s"]
        print(f"profile {name}: the fold audit of {len(folds)} of {len(FOLD_KEYS)} folds {audit['wall_s']:.0f} s "
              f"(audit_models {audit['steps'].get('audit_models', 0.0):.0f} s: {epochs} U-Net epochs at "
              f"{rate:.0f} training images/s), peak RSS {audit['peak_rss_gib']:.2f} GiB"
              + (f"; then every label ranked and the site {ranked:.0f} s" if ranked is not None else ""), flush=True)
    ratio = f" {names[-1]}_vs_{names[0]}={walls[names[-1]] / walls[names[0]]:.2f}" if len(names) > 1 else ""
    print(f"bench full_scale profiles: folds={len(folds)} " + " ".join(f"{n}_s={w:.0f}" for n, w in walls.items())
          + ratio)


def main():
    subprocess.run(["make", "-C", str(ROOT), str(MODEL)], check=True)
    ensure_data()
    runs = CACHE / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    model = runs / "model.keras"
    model.parent.mkdir(parents=True)
    shutil.copy(MODEL, model)
    if "--profiles" in sys.argv:
        folds = sys.argv[sys.argv.index("--folds") + 1].split(",") if "--folds" in sys.argv else FOLD_KEYS
        return profiles(sys.argv[sys.argv.index("--profiles") + 1].split(","), folds, model, runs)
    print("bench full_scale: cold run at half size ...", flush=True)
    half = materialize(HALF, model, runs / "half")
    print("bench full_scale: cold run at full size ...", flush=True)
    cold = materialize(FULL, model, runs / "full")
    print(f"bench full_scale: cold run at full size in {SHARDS} shards (one run) ...", flush=True)
    sharded = materialize(FULL, model, runs / "sharded", shards=SHARDS)
    print("bench full_scale: the fold audit at full size (every fold in one run) ...", flush=True)
    fold_audit = materialize(FULL, model, runs / "full", select="group:audit and not key:label_issues", partitions=FOLD_KEYS)
    print("bench full_scale: every label ranked, the corrections and the site ...", flush=True)
    ranked = materialize(FULL, model, runs / "full", select="label_issues+")
    site_mib = sum(p.stat().st_size for p in (runs / "full" / "var" / "site").resolve().rglob("*") if p.is_file()) / 2 ** 20
    change_model(MODEL, model)
    print("bench full_scale: re-run after the model file changed ...", flush=True)
    rerun = materialize(FULL, model, runs / "full", select=MODEL_DEPENDENT)

    n_val = cold["meta"]["val_predictions"]["images"]
    n_all = sum(cold["meta"]["image_cache"][f"{s}_images"] for s in ("train", "val", "test"))
    rows = [{"step": k, "cold_s": round(v, 1), "rerun_s": round(rerun["steps"].get(k, 0.0), 1) or "-",
             "peak_rss_gib_half": round(half["step_rss_gib"].get(k, 0.0), 2),
             "peak_rss_gib_full": round(cold["step_rss_gib"].get(k, 0.0), 2)}
            for k, v in sorted(cold["steps"].items(), key=lambda kv: -kv[1])]
    print(pd.DataFrame(rows).to_markdown(index=False))
    model_rate = n_val / cold["steps"]["model_pass"]
    print(f"\nimages: {n_all} ({n_val} validation)")
    print(f"image_cache: {cold['meta']['image_cache']['images_per_second']} images/s (decode + resize, "
          f"{os.cpu_count()} threads); model_pass (predictions and saliency): {model_rate:.1f} images/s")
    print(f"peak memory (sum over the run's processes): half size RSS {half['peak_rss_gib']:.2f} GiB / "
          f"PSS {half['peak_pss_gib']:.2f} GiB; full size RSS {cold['peak_rss_gib']:.2f} GiB / PSS "
          f"{cold['peak_pss_gib']:.2f} GiB; re-run RSS {rerun['peak_rss_gib']:.2f} GiB")
    # a new model file re-runs the model-dependent assets down to the ranking and the site, not the fold audit:
    # its re-run is held against the same assets cold (the cold run, then the ranking and the site)
    rerun_vs_cold = rerun['wall_s'] / (cold['wall_s'] + ranked['wall_s'])
    print(f"wall: half cold {half['wall_s']:.0f} s, full cold {cold['wall_s']:.0f} s (then the ranking and the site "
          f"{ranked['wall_s']:.0f} s), re-run {rerun['wall_s']:.0f} s ({rerun_vs_cold:.2f} of the same assets cold)")
    one_step, shard_step = max(cold["step_rss_gib"].values()), max(sharded["step_rss_gib"].values())
    print(f"sharded: {SHARDS} shards in one run: wall {sharded['wall_s']:.0f} s "
          f"({sharded['wall_s'] / cold['wall_s']:.2f} of the unsharded run); largest step process "
          f"{shard_step:.2f} GiB RSS (unsharded {one_step:.2f}); per step: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(sharded["steps"].items(), key=lambda kv: -kv[1])[:4]))
    print(f"fold audit ({len(FOLD_KEYS)} folds, every labelled image): {fold_audit['wall_s']:.0f} s "
          f"({fold_audit['wall_s'] / cold['wall_s']:.2f} of the cold run; audit_models "
          f"{fold_audit['steps'].get('audit_models', 0):.0f} s), peak RSS {fold_audit['peak_rss_gib']:.2f} GiB; then "
          f"every label ranked, the corrections and the site: {ranked['wall_s']:.0f} s; the site: {site_mib:.0f} MiB")
    notebook = notebook_costs(FULL, model, n_val, n_all)
    print("reference notebook's dominant steps on the same data (per-unit cost measured here x count): "
          + ", ".join(f"{k} {v:.0f} s" for k, v in notebook.items())
          + f"; total {sum(notebook.values()):.0f} s = {sum(notebook.values()) / cold['wall_s']:.1f}x our cold run")
    peak = max(half["peak_rss_gib"], cold["peak_rss_gib"], rerun["peak_rss_gib"])
    print(f"bench full_scale: cold_s={cold['wall_s']:.0f} rerun_s={rerun['wall_s']:.0f} "
          f"rerun_vs_cold={rerun_vs_cold:.2f} peak_rss_gib={peak:.2f} "
          f"sharded_s={sharded['wall_s']:.0f} sharded_vs_one={sharded['wall_s'] / cold['wall_s']:.2f} "
          f"sharded_step_rss_gib={shard_step:.2f} step_rss_gib={one_step:.2f} audit_s={fold_audit['wall_s']:.0f} "
          f"ranked_s={ranked['wall_s']:.0f} site_mib={site_mib:.0f}")


if __name__ == "__main__":
    main()
