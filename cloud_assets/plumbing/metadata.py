"""What assets show in the UI: markdown tables in their metadata, progress in the run log."""
import dagster as dg
import pandas as pd


def md_table(df: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.to_markdown(index=False))


def progress_logger(context, what: str, unit: str = "images"):
    """A `progress(done, total, seconds)` callback that logs count, rate and ETA."""
    def log(done, total, secs):
        rate = done / max(secs, 1e-9)
        context.log.info(f"{what}: {done}/{total} {unit}, {rate:.1f}/s, ETA {(total - done) / max(rate, 1e-9):.0f}s")
    return log
