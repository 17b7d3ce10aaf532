import json

from fullduplex.data.format import read_manifest
from fullduplex.data.lhotse_export import export_lhotse
from fullduplex.data.merge import merge
from fullduplex.data.shard import parse_shard
from fullduplex.data.synth import SynthConfig, run_synth


def test_shards_are_disjoint_and_merge(tmp_path):
    cfg = SynthConfig(min_item_s=6, max_item_s=6)
    for i in range(2):
        run_synth(str(tmp_path / "ds"), hours=18 / 3600, seed=3, shard=parse_shard(f"{i}/2"), cfg=cfg, progress=False)
    res = merge(str(tmp_path / "all"), [str(tmp_path / "ds")])
    paths = [e["path"] for e in read_manifest(tmp_path / "all")]
    assert res["items"] == 3 and len(set(paths)) == 3
    assert (tmp_path / "all" / paths[0]).exists()


def test_lhotse_export(synth_dir, tmp_path):
    rec, sup = export_lhotse(str(synth_dir), str(tmp_path / "lh"))
    recs = [json.loads(l) for l in rec.read_text().splitlines()]
    sups = [json.loads(l) for l in sup.read_text().splitlines()]
    assert len(recs) == 2 and recs[0]["sampling_rate"] == 24000 and recs[0]["channel_ids"] == [0, 1]
    assert {s["channel"] for s in sups} == {0, 1}
    assert all(s["recording_id"] in {r["id"] for r in recs} for s in sups)
