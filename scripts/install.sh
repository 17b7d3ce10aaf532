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

# --- Python packages ------------------------------------------------------------------------
PIP="python -m pip install -q --disable-pip-version-check"
$PIP torch==2.13.0                      # the CPU build; any range would pull a multi-GB CUDA build
$PIP -e ".[test]"
# the reference implementation (test oracle and benchmark baseline), without its torch<2.10 pin
$PIP --no-deps moshi==0.2.13
$PIP 'einops>=0.7,<0.9' 'huggingface-hub>=0.24,<1.0'
