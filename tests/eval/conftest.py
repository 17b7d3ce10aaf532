import pytest

from fullduplex.engines import tts

from eval_signals import SR, have_voices


@pytest.fixture(scope="session")
def speech():
    """16 kHz TTS clips: user question, a long system reply, a short backchannel."""
    if not have_voices():
        pytest.skip("flite voices not installed (scripts/install.sh)")
    from fullduplex.audio import resample

    def say(text, voice):
        a, sr, ws = tts.synthesize(text, voice)
        return resample(a, sr, SR), ws

    return {
        "question": say("Could you tell me what the capital of France is?", "flite-rms"),
        "reply": say("Sure. The capital of France is Paris. It is a big city on the river Seine, and many "
                     "people visit it every year.", "flite-slt"),
        "yeah": say("yeah", "flite-slt"),
        "story": say("So this morning I went to the market and they had these huge red apples.", "flite-rms"),
    }
