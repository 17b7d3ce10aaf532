"""A small end-to-end eval: two built-in reference systems on the 3-item `tiny` suite, through the
command line, produce the report files and the JSON summary."""

import json

import pytest
from eval_signals import have_voices

from fullduplex.cli import main
from fullduplex.eval.suite import load_items


@pytest.mark.slow
def test_eval_two_systems_tiny_suite(tmp_path, capsys):
    if not have_voices():
        pytest.skip("flite voices not installed")
    out = tmp_path / "ev"
    rc = main(["eval", "--system", "silence", "--system", "scripted", "--suite", "tiny", "--out", str(out), "--json"])
    assert rc == 0
    js = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(js["systems"]) == {"silence", "scripted"}
    sil, scr = js["systems"]["silence"], js["systems"]["scripted"]
    assert sil["M1"] == 0.0 and scr["M1"] == 1.0
    assert 0.5 < scr["M2"] < 1.0            # 0.6 s endpointing + one frame
    assert scr["M8"] == 1.0 and scr["M9"] < 1.0
    assert sil["M14"] == 0.0 and sil["M18"] == 1.0
    assert all(f"M{k}" in scr for k in range(1, 20))
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "Moshi" in html and "PersonaPlex" in html
    assert "| M1 |" in (out / "report.md").read_text()
    items = load_items(out / "suites" / "tiny-seed0")
    assert [i.scenario for i in items] == ["S1", "S4", "S8"]
    rec = json.loads((out / "runs" / "scripted" / "S4_000" / "record.json").read_text())
    assert rec["episodes"] and rec["debug"]["M8"]["speaking_at_barge_in"] and not rec["invalid_echo"]
    assert (out / "runs" / "scripted" / "S4_000" / "output.wav").exists()


def test_fdb_layout_folder_is_read(tmp_path):
    """A Full-Duplex-Bench folder (input.wav + turn_taking.json / pause.json) is an evaluable suite."""
    import numpy as np

    from fullduplex.audio import write

    for name, ann in (("a", "turn_taking.json"), ("b", "pause.json")):
        d = tmp_path / "candor" / name
        write(d / "input.wav", np.zeros(16000, np.float32), 16000)
        (d / ann).write_text(json.dumps([{"timestamp": [0.3, 0.6]}]))
    items = load_items(tmp_path)
    assert [(i.scenario, i.meta.get("user_turn_end"), i.meta.get("pause")) for i in items] == [
        ("S1", 0.3, None), ("S2", None, [0.3, 0.6])]


def test_sessions_run_several_items_through_one_batched_model(tmp_path):
    """--sessions 2: three items through a batch of two sessions; every item gets its own output, as
    long as its input, and the step times (which served two sessions) do not count as M19."""
    import numpy as np

    from fullduplex.audio import info, write
    from fullduplex.eval.run import run_system, score_system

    rng = np.random.default_rng(0)
    for name, seconds in (("a", 0.5), ("b", 1.2), ("c", 0.8)):
        d = tmp_path / "suite" / name
        write(d / "input.wav", rng.uniform(-0.3, 0.3, int(seconds * 16000)).astype(np.float32), 16000)
        (d / "turn_taking.json").write_text(json.dumps([{"timestamp": [0.2, 0.4]}]))
    items = load_items(tmp_path / "suite")
    dirs = run_system("random-tiny", items, tmp_path / "runs", progress=False, sessions=2)
    for it in items:
        assert abs(info(dirs[it.id] / "output.wav").duration - info(it.input).duration) < 1e-3
        timing = json.loads((dirs[it.id] / "timing.json").read_text())
        assert timing["sessions"] == 2 and timing["frames"] == -(-round(info(it.input).duration * 24000) // 1920)
    from fullduplex.eval.analysis import read16
    from fullduplex.eval.run import analyse_system, user_ipus

    inputs = {it.id: (x := read16(it.input), user_ipus(it, x)) for it in items}
    _, extra = score_system(items, dirs, analyse_system(items, dirs, inputs, progress=False), inputs)
    assert "M19" not in extra


def test_an_output_is_reused_only_for_the_input_it_was_made_from(tmp_path):
    """A second run in the same folder skips finished items, but reruns an item whose input changed
    (another seed or suite under the same --out) and one whose run was killed before it finished."""
    import numpy as np

    from fullduplex.audio import read, write
    from fullduplex.eval.driver import SOURCE
    from fullduplex.eval.run import run_system

    rng = np.random.default_rng(1)
    for name in ("a", "b", "c"):
        d = tmp_path / "suite" / name
        write(d / "input.wav", rng.uniform(-0.3, 0.3, 8000).astype(np.float32), 16000)
        (d / "turn_taking.json").write_text(json.dumps([{"timestamp": [0.2, 0.4]}]))
    items = load_items(tmp_path / "suite")
    dirs = run_system("echo", items, tmp_path / "runs", progress=False)
    before = {k: read(d / "output.wav")[0] for k, d in dirs.items()}
    stamps = {k: (d / "output.wav").stat().st_mtime_ns for k, d in dirs.items()}
    write(tmp_path / "suite" / "a" / "input.wav", rng.uniform(-0.3, 0.3, 8000).astype(np.float32), 16000)
    (dirs["b"] / SOURCE).unlink()  # killed between its output and its completion mark
    run_system("echo", items, tmp_path / "runs", progress=False)
    assert not np.array_equal(read(dirs["a"] / "output.wav")[0], before["a"])  # made from the new input
    assert (dirs["b"] / "output.wav").stat().st_mtime_ns != stamps["b"]
    assert (dirs["c"] / "output.wav").stat().st_mtime_ns == stamps["c"]


def test_repeats_run_every_item_again_and_pool_the_runs(tmp_path):
    """--repeats 2: a second folder of outputs per system, every per-item metric counted once per
    run, and the report says so."""
    import numpy as np

    from fullduplex.audio import read, write
    from fullduplex.eval.run import evaluate

    rng = np.random.default_rng(2)
    for name in ("a", "b", "c"):
        d = tmp_path / "suite" / name
        write(d / "input.wav", rng.uniform(-0.3, 0.3, 16000).astype(np.float32), 16000)
        (d / "turn_taking.json").write_text(json.dumps([{"timestamp": [0.2, 0.5]}]))
    res = evaluate(["random-tiny"], str(tmp_path / "suite"), tmp_path / "out", progress=False, repeats=2)
    first, second = tmp_path / "out" / "runs" / "random-tiny", tmp_path / "out" / "runs" / "random-tiny~2"
    for k in ("a", "b", "c"):
        assert (first / k / "record.json").exists() and (second / k / "record.json").exists()
    assert any(not np.array_equal(read(first / k / "output.wav")[0], read(second / k / "output.wav")[0])
               for k in ("a", "b", "c"))  # the system samples: the runs differ
    m18 = res["systems"]["random-tiny"]["M18"]
    assert res["repeats"] == 2 and m18["n"] == 6 and m18["items"] == 3
    assert "2 runs of each" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(ValueError, match="--repeats"):
        evaluate(["random-tiny"], str(tmp_path / "suite"), tmp_path / "out", progress=False, repeats=0)
