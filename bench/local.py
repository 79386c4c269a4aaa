"""Benchmark the embedded ``local`` model: load time, chat tokens/s, stream first-token latency,
and the real-time factor of transcribing ~10 s of speech (made with espeak-ng).

    python bench/local.py [--runs 5]

Every number is a median of several runs, and each is printed next to the same measurement
made with llama-cpp-python / faster-whisper directly, in the same run, so the ratio shows what
the provider adds (the worker thread, the loop hand-over, request building). Machines here are
shared and noisy: trust the ratios more than the absolute times. The two sides alternate run
by run, and llama.cpp's KV cache is reset before each generation, so every prompt is
evaluated cold (an identical prompt would otherwise skip its prefill).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import llm_magics as lm
from llm_magics._local import model as _local_model

PROMPT = "Write a short poem about the sea."
SPEECH = (
    "Jupyter notebooks make it easy to try an idea, look at the result, and try again. "
    "This sentence was spoken by a machine so that a small speech model can write it down."
)


def paired(runs: int, ours: Callable[[], float], raw: Callable[[], float]) -> tuple[float, float]:
    """Medians of ``runs`` alternating measurements, so load changes hit both sides alike."""
    a, b = [], []
    for _ in range(runs):
        a.append(ours())
        b.append(raw())
    return statistics.median(a), statistics.median(b)


def row(name: str, pair: tuple[float, float], unit: str, higher_is_better: bool = False) -> None:
    ours, raw = pair
    ratio = ours / raw if raw else float("nan")
    better = "higher" if higher_is_better else "lower"
    print(f"{name:<34} {ours:>9.3f} {raw:>9.3f} {unit:<8} ratio {ratio:5.2f} ({better} is better)")


def bench_load(runs: int) -> None:
    started = time.perf_counter()
    import llama_cpp

    print(f"import llama_cpp: {time.perf_counter() - started:.3f} s (once per process)")

    def ours() -> float:
        slot = _local_model._Slot[_local_model.ChatModel]()
        path = _local_model.gguf_path()
        t = time.perf_counter()
        model = slot.get(path, lambda: _local_model._build_chat(path))
        elapsed = time.perf_counter() - t
        model.llama.close()
        return elapsed

    def raw() -> float:
        t = time.perf_counter()
        llama = llama_cpp.Llama(model_path=str(_local_model.gguf_path()), n_ctx=2048, verbose=False)
        elapsed = time.perf_counter() - t
        llama.close()
        return elapsed

    row("load SmolLM2 (s)", paired(runs, ours, raw), "s")


def bench_chat(runs: int, client: lm.Client, model: _local_model.ChatModel) -> None:
    llama, lock = model.llama, model.lock

    def reset() -> None:
        # A cancelled stream may still be finishing its last token on the worker: a Llama
        # is not thread-safe, so every direct use here takes the model's lock.
        with lock:
            llama.reset()  # cold prompt: no KV-cache reuse between runs

    def ours() -> float:
        reset()
        t = time.perf_counter()
        r = client.chat(PROMPT, temperature=0, max_tokens=64)
        return r.usage.output_tokens / (time.perf_counter() - t)

    def raw() -> float:
        reset()
        t = time.perf_counter()
        with lock:
            r = llama.create_chat_completion(
                messages=[
                    {"role": "system", "content": _local_model.SMOLLM2_SYSTEM},
                    {"role": "user", "content": PROMPT},
                ],
                temperature=0,
                max_tokens=64,
            )
        return int(r["usage"]["completion_tokens"]) / (time.perf_counter() - t)

    row("chat tokens/s", paired(runs, ours, raw), "tok/s", True)


def bench_first_token(runs: int, client: lm.Client, model: _local_model.ChatModel) -> None:
    llama, lock = model.llama, model.lock

    def reset() -> None:
        with lock:
            llama.reset()

    def ours() -> float:
        reset()
        t = time.perf_counter()
        with client.stream(PROMPT, temperature=0, max_tokens=64) as stream:
            next(iter(stream))
            return time.perf_counter() - t

    def raw() -> float:
        reset()
        t = time.perf_counter()
        with lock:
            chunks = llama.create_chat_completion(
                messages=[
                    {"role": "system", "content": _local_model.SMOLLM2_SYSTEM},
                    {"role": "user", "content": PROMPT},
                ],
                temperature=0,
                max_tokens=64,
                stream=True,
            )
            for chunk in chunks:
                if chunk["choices"][0]["delta"].get("content"):
                    break
            elapsed = time.perf_counter() - t
            chunks.close()
        return elapsed

    row("stream first token (s)", paired(runs, ours, raw), "s")


def speech_wav(directory: Path) -> tuple[Path, float] | None:
    if shutil.which("espeak-ng") is None:
        return None
    path = directory / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "175", "-w", str(path), SPEECH], check=True)
    with wave.open(str(path)) as w:
        return path, w.getnframes() / w.getframerate()


def bench_transcribe(runs: int, client: lm.Client) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        made = speech_wav(Path(tmp))
        if made is None:
            print("transcription: skipped (install espeak-ng)")
            return
        wav, seconds = made
        client.transcribe(wav)  # load Whisper once, outside the timing
        whisper, _ = _local_model.whisper_model()

        def ours() -> float:
            t = time.perf_counter()
            client.transcribe(wav)
            return (time.perf_counter() - t) / seconds

        def raw() -> float:
            t = time.perf_counter()
            segments, _ = whisper.transcribe(str(wav))
            "".join(s.text for s in segments)
            return (time.perf_counter() - t) / seconds

        label = f"transcribe RTF ({seconds:.1f} s speech)"
        row(label, paired(runs, ours, raw), "x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"{os.cpu_count()} CPUs, {_local_model.cpu_threads()} usable; load {os.getloadavg()}")
    print(f"{'':<34} {'local':>9} {'raw':>9}")
    bench_load(args.runs)
    client = lm.client("local", cache=False)
    client.chat("Hi", max_tokens=1)  # load once; warm
    model = _local_model.chat_model()
    bench_chat(args.runs, client, model)
    bench_first_token(args.runs, client, model)
    bench_transcribe(max(3, args.runs // 2), client)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
