"""What a step process costs before its asset's code runs: the multiprocess executor forks each step
from a server that imported its preloads once per run (`defs.resources.PRELOAD`), and the first thing
a step does is open the Dagster instance. Side by side in one run, alternating, each variant in a
fork server of its own: the preloads as shipped, and the same without the instance's storage
(`cloud_assets.instance`, which pulls in Dagster's storage, SQLAlchemy, Alembic and dagster-postgres).
Each forked child opens the instance of a SQLite DAGSTER_HOME with the project's dagster.yaml and
reads one run, as a step does; its CPU and wall time are measured in the child.

Last line: `bench step_start: cpu_s=A cpu_s_without=B wall_s=C wall_s_without=D ratio=R`
(medians per step process; ratio: B / A, the step start-up with the storage preloaded against without).
"""
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STEPS, ROUNDS = 12, 3  # step processes per fork server, fork servers per variant


def _open_instance(home: str) -> tuple[float, float]:
    """In a forked child: opens the instance and reads a run, as a step process does first."""
    cpu, wall = time.process_time(), time.perf_counter()
    import dagster as dg
    from dagster._core.instance import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        instance.get_runs(limit=1)
    return time.process_time() - cpu, time.perf_counter() - wall


def _variant(preload: list[str], home: str, out) -> None:
    """A process with a fork server of its own that imported `preload`; STEPS children, one at a time."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    with context.Pool(1, maxtasksperchild=1) as pool:
        out.put([pool.apply(_open_instance, (home,)) for _ in range(STEPS)])


def main() -> None:
    # imported here: the fork servers import this file too, which must not preload anything itself
    from cloud_assets import instance
    from cloud_assets.defs.resources import PRELOAD

    home = Path(tempfile.mkdtemp(prefix="bench-step-start-"))
    instance.write(home, ROOT / "dagster.yaml", {})  # as `cloud-assets instance`: dagster.yaml, tables, the pool
    variants = {"with": list(PRELOAD), "without": [m for m in PRELOAD if m != "cloud_assets.instance"]}
    times = {name: [] for name in variants}
    spawn = multiprocessing.get_context("spawn")
    for r in range(ROUNDS):
        for name, preload in variants.items():
            out = spawn.Queue()
            proc = spawn.Process(target=_variant, args=(preload, str(home), out))
            proc.start()
            times[name] += out.get()
            proc.join()
        print(f"round {r + 1}/{ROUNDS}: " + ", ".join(
            f"{name} {statistics.median(c for c, _ in t[-STEPS:]):.3f} s CPU" for name, t in times.items()), flush=True)
    cpu = {n: statistics.median(c for c, _ in t) for n, t in times.items()}
    wall = {n: statistics.median(w for _, w in t) for n, t in times.items()}
    print(f"{STEPS * ROUNDS} step processes per variant; preloads {', '.join(PRELOAD)}")
    print(f"bench step_start: cpu_s={cpu['with']:.3f} cpu_s_without={cpu['without']:.3f} wall_s={wall['with']:.3f} "
          f"wall_s_without={wall['without']:.3f} ratio={cpu['without'] / cpu['with']:.1f}")


if __name__ == "__main__":
    main()
