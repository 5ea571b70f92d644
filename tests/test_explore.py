"""`cloud_assets.load(asset)`: the latest materialization's value, in a plain Python session."""
import subprocess
import sys

import dagster as dg
import pytest

from cloud_assets import explore
from tests.helpers import A, dagster_home, materialize, run_env

pytestmark = pytest.mark.e2e  # the end-to-end tier (make test-fast leaves it out)


def test_load_returns_the_latest_value_in_a_plain_python_session(small_dataset, tmp_path):
    home = dagster_home(tmp_path)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = materialize(small_dataset, tmp_path / "var", [A.label_table, A.train_val_split],
                             instance=instance)
        assert result.success
        split = explore.load("train_val_split", instance).table("split")
        assert len(split) == 48 and set(split["split"]) == {"train", "val"}
        with pytest.raises(LookupError, match="label_issues: no materialization recorded by the Dagster instance"):
            explore.load("label_issues", instance)
    code = ("import cloud_assets; labels = cloud_assets.load('label_table').table('labels'); "
            "print(len(labels), list(labels.columns[:3]))")
    done = subprocess.run([sys.executable, "-c", code], env=run_env(home, small_dataset), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "48 ['image', 'classes', 'n_labels']"
