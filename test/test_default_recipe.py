"""The shipped default model is reproducible: its recipe, run from nothing, reaches its quality."""
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def accuracy(model, data) -> float:
    return float(np.mean(model.predict(data.images)[0] == data.labels))


def test_the_recipe_rebuilds_a_model_of_the_shipped_quality(tmp_path):
    """Renders the 600 scenes and trains (about 2 minutes on 2 cores); both models are scored on
    the held-out scenes of this fresh rendering, which neither trained on."""
    from robot_classify.data.datasets import load_dataset
    from robot_classify.runtime.default_model import get_default_model
    from robot_classify.sim.default_recipe import build_default_model, default_key
    from robot_classify.learn.model_io import load_model
    from robot_classify.sim.object_catalog import resting_heights

    rebuilt = load_model(build_default_model(tmp_path / "rebuilt.safetensors", quiet=True,
                                             data_dir=tmp_path / "data"), device="cpu")
    shipped = get_default_model(device="cpu")
    test = load_dataset(tmp_path / "data" / "patches", "props")["test"]
    assert rebuilt.meta["name"] == shipped.meta["name"] == default_key()
    assert rebuilt.class_names == shipped.class_names and len(test) > 1000
    assert rebuilt.resting == shipped.resting == resting_heights()
    ours, theirs = accuracy(rebuilt, test), accuracy(shipped, test)
    assert ours >= 0.93 and ours >= theirs - 0.01, (ours, theirs)
    with pytest.raises(FileExistsError):
        build_default_model(tmp_path / "rebuilt.safetensors")
