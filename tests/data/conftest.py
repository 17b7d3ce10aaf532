import pytest

from fullduplex.data.synth import SynthConfig, run_synth


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """Two short synthetic conversations (~20 s each), made once per test session."""
    out = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(min_item_s=18, max_item_s=22)
    run_synth(str(out), hours=40 / 3600, seed=7, jobs=2, cfg=cfg, progress=False)
    return out
