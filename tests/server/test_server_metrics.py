"""Per-turn stage timings and events that a system reports in Frame.info reach /metrics."""

import types

from fullduplex.server.engine import Engine
from fullduplex.server.metrics import prometheus


def test_turn_stage_timings_and_events_become_metrics():
    system = types.SimpleNamespace(batch_size=1, frame_size=1920, sample_rate=24_000)
    engine = Engine(system, max_sessions=1)
    for asr in (0.5, 1.5, 1.0):
        engine._record_info({"turn": {"asr_s": asr, "llm_ttft_s": 0.3, "detector": "silence"},
                             "events": [{"event": "reply_start"}]})
    engine._record_info({"events": [{"event": "barge_in", "after_s": 2.0}]})
    m = engine.server_metrics()
    assert m["fullduplex_turn_asr_s_p50"] == 1.0
    assert m["fullduplex_turn_llm_ttft_s_p99"] == 0.3
    assert "fullduplex_turn_detector_p50" not in m  # only numeric *_s stages
    assert m["fullduplex_system_reply_start_total"] == 3 and m["fullduplex_system_barge_in_total"] == 1
    text = prometheus(m, {})
    assert "# TYPE fullduplex_system_barge_in_total counter" in text
    assert "fullduplex_turn_asr_s_p50 1\n" in text
