import json

import pytest

from fullduplex.cli import main
from fullduplex.systems.build import default_model_path


def test_serve_without_a_bundled_model_says_so(capsys):
    if (default_model_path() / "lm").is_dir():
        pytest.skip("a default model is bundled")
    assert main(["serve", "--system", "default", "--port", "0"]) == 2
    assert "no default duplex model is bundled yet" in capsys.readouterr().err


def test_bench_serve_json(capsys):
    assert main(["bench", "serve", "--system", "random-tiny", "--max-sessions", "1", "--frames", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["realtime_sessions"] in (0, 1) and res["p99_ms_one_session"] > 0
    assert set(res["per_sessions"]["1"]) >= {"p50_ms", "p99_ms", "cpu_ms_p99"}
