#!/usr/bin/env bash
# Installs llm_magics with the embedded local model and the test tools on a fresh machine.
#
# llama-cpp-python is compiled from source. The native build (-DGGML_NATIVE=ON, its default)
# crashes with SIGSEGV in ggml_backend_amx_mul_mat on some CPUs, so it is built once with a
# portable instruction set into a wheel directory of our own and installed from there: pip's
# own wheel cache keys builds by URL, not by CMAKE_ARGS, and could hand back a native build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
WHEELS=${LLM_MAGICS_WHEEL_DIR:-$HOME/.cache/llm_magics-wheels}
LLAMA_VERSION=0.3.36
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore

want_apt=()
command -v espeak-ng >/dev/null 2>&1 || want_apt+=(espeak-ng)
# The terminal app's tests drive `llm-magics chat` in a real terminal.
command -v tmux >/dev/null 2>&1 || want_apt+=(tmux)
# The shared-cache tests start a real redis-server on loopback.
command -v redis-server >/dev/null 2>&1 || want_apt+=(redis-server)
if [ "${LLM_MAGICS_BROWSER_TESTS:-1}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || want_apt+=(chromium)
fi
if [ ${#want_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want_apt[@]}" >/dev/null
  else
    echo "note: install ${want_apt[*]} with your package manager for the audio/browser/terminal tests" >&2
  fi
fi

mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION (portable, ~5-10 min on 2 cores; once)..."
  "$PYTHON" -m pip wheel --no-deps --no-cache-dir -q -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi

"$PYTHON" -m pip install -q --find-links "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
"$PYTHON" -m pip install -q --find-links "$WHEELS" -e ".[local,media,pandas,ray,test]"
echo "llm_magics installed: $("$PYTHON" -c 'import llm_magics; print(llm_magics.__file__)')"
