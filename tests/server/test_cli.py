import json

from fullduplex.cli import main


def test_serve_without_the_bundled_model_says_so(capsys, tmp_path, monkeypatch):
    import fullduplex.systems.build as build

    monkeypatch.setattr(build, "default_model_path", lambda: tmp_path / "model")  # a package without its assets
    assert main(["serve", "--system", "default", "--port", "0"]) == 2
    assert "no default duplex model is bundled in" in capsys.readouterr().err


def test_bench_serve_json(capsys):
    assert main(["bench", "serve", "--system", "random-tiny", "--max-sessions", "1", "--frames", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["realtime_sessions"] in (0, 1) and res["p99_ms_one_session"] > 0
    assert set(res["per_sessions"]["1"]) >= {"p50_ms", "p99_ms", "cpu_ms_p99"}
    assert res["history_frames"] == res["lm_context"] > 0, "timed where a step costs the most: a full context"
    assert main(["bench", "serve", "--system", "random-tiny", "--max-sessions", "1", "--frames", "3",
                 "--history-s", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["history_frames"] == 0
