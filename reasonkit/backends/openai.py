"""The `openai` backend: any OpenAI-compatible Chat Completions server (OpenAI, Gemini's compatible endpoint,
`vllm serve`, SGLang, ...).

The frames are reasonkit's own decoded frames (same sampling as `hf`/`vllm`), sent either as an ordered list of
base64 images, each preceded by its timestamp in the text (``<1.5 seconds>``, the form Qwen3-VL's video prompts
use, so a model that sees images still knows when each frame was taken), or -- ``frames_as: video`` on a vLLM
server -- as one frame-sequence video (``data:video/jpeg;base64,f1,f2,...``) with the clip's metadata in vLLM's
per-request ``media_io_kwargs``: the server's processor then sees the very frames, fps and indices the `vllm`
backend hands its engine, so greedy answers agree (PNG frames keep it lossless; vLLM's loader opens any PIL
format under that media type).

Requests run concurrently (``max_concurrency``, optionally paced to ``max_requests_per_minute``); 429, 408, 409,
5xx, timeouts, dropped connections and malformed replies are retried with exponential backoff and full jitter,
honouring Retry-After, bounded in attempts and in total wait. A request that still fails comes back as a
``GenResult`` with ``error`` set, which the runner records as an error record (``--retry-errors`` asks it again).
The API key is read from the environment variable named by ``api_key_env`` and goes only into the client.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import random
import time
from email.utils import parsedate_to_datetime
from typing import Any

from reasonkit.errors import ConfigError
from reasonkit.types import Frames, GenRequest, GenResult

# ModelSection keys that change what the server is asked (they join the manifest's identity hash); the other API
# keys are operational (where the server is, how hard to push it, what it costs) and may change on resume.
IDENTITY_KEYS = ("api_dialect", "frames_as", "image_format", "jpeg_quality")
OPERATIONAL_KEYS = ("base_url", "api_key_env", "max_concurrency", "timeout_s", "max_requests_per_minute",
                    "request_retries", "retry_max_wait_s", "price_input_per_mtok", "price_output_per_mtok")
RETRY_STATUS = {408, 409, 429}  # plus every 5xx
BACKOFF_CAP_S = 60.0


def manifest_excludes(backend: str) -> set[str]:
    """ModelSection keys left out of the manifest identity: all API keys for local backends (so results written
    before these keys existed still resume), the operational ones for `openai`."""
    return set(OPERATIONAL_KEYS) | (set() if backend == "openai" else set(IDENTITY_KEYS))


def check_generation(gen: dict[str, Any], dialect: str, frames_as: str) -> None:
    """Refuse what the API cannot express instead of silently dropping it (one line, naming the key)."""
    if dialect == "openai":
        if gen.get("top_k", -1) not in (-1, 0, None):
            raise ConfigError(f"generation.top_k={gen['top_k']}: the OpenAI Chat Completions API has no top_k; "
                              "remove it, or set model.api_dialect=vllm for a vLLM/SGLang server")
        if gen.get("repetition_penalty", 1.0) != 1.0:
            raise ConfigError(f"generation.repetition_penalty={gen['repetition_penalty']}: the OpenAI Chat "
                              "Completions API has none (it has presence/frequency_penalty); remove it, or set "
                              "model.api_dialect=vllm for a vLLM/SGLang server")
        if frames_as == "video":
            raise ConfigError("model.frames_as=video: the OpenAI API takes no video input; use frames_as=images, "
                              "or model.api_dialect=vllm for a vLLM server (frame-sequence video)")


class OpenAIBackend:
    """Options: the ModelSection keys base_url, api_key_env, api_dialect, frames_as, image_format, jpeg_quality,
    max_concurrency, timeout_s, max_requests_per_minute, request_retries, retry_max_wait_s."""

    remote = True  # the model lives behind base_url: no local folder to check, the name is its identity

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 api_dialect: str = "openai", frames_as: str = "images", image_format: str = "jpeg",
                 jpeg_quality: int = 90, max_concurrency: int = 8, timeout_s: float = 120.0,
                 max_requests_per_minute: int | None = None, request_retries: int = 6,
                 retry_max_wait_s: float = 300.0, backoff_base_s: float = 1.0):
        check_generation({}, api_dialect, frames_as)
        self.model_name, self.base_url, self.dialect = model, base_url, api_dialect
        self.frames_as, self.image_format, self.jpeg_quality = frames_as, image_format, jpeg_quality
        self.max_concurrency, self.timeout_s = max_concurrency, timeout_s
        self.min_interval = 60.0 / max_requests_per_minute if max_requests_per_minute else 0.0
        self.request_retries, self.retry_max_wait_s, self.backoff_base_s = (request_retries, retry_max_wait_s,
                                                                            backoff_base_s)
        self._api_key = _api_key(api_key_env, base_url)
        self._next_start = 0.0  # monotonic time before which the next request may not start (rate pacing)

    @classmethod
    def from_eval_config(cls, cfg) -> OpenAIBackend:
        """Built by the eval runner from the whole config, so unsupported generation options are refused before
        any request is sent."""
        from reasonkit.evaluate.records import effective_generation

        m = cfg.model
        check_generation(effective_generation(cfg).model_dump(), m.api_dialect, m.frames_as)
        prices = {"price_input_per_mtok", "price_output_per_mtok"}  # the runner's (usage and cost), not the client's
        return cls(m.model_name, **m.model_dump(include={*IDENTITY_KEYS, *OPERATIONAL_KEYS} - prices))

    # ----------------------------------------------------------------------------------------------- requests
    def body(self, request: GenRequest) -> dict[str, Any]:
        """The Chat Completions request for one GenRequest (everything but the model name)."""
        gen = {"top_k": request.top_k, "repetition_penalty": request.repetition_penalty}
        check_generation(gen, self.dialect, self.frames_as)
        body: dict[str, Any] = {"messages": [self._message(m, request.frames) for m in request.messages],
                                "temperature": request.temperature}
        if request.n != 1:  # sent only when asked for: not every compatible server takes the key
            body["n"] = request.n
        # OpenAI renamed max_tokens (its reasoning models refuse the old name); vLLM/SGLang take both
        body["max_completion_tokens" if self.dialect == "openai" else "max_tokens"] = request.max_tokens
        if request.temperature > 0:  # greedy ignores top_p; the vllm backend sends 1.0 there too
            body["top_p"] = request.top_p
        if request.presence_penalty:
            body["presence_penalty"] = request.presence_penalty
        if request.frequency_penalty:
            body["frequency_penalty"] = request.frequency_penalty
        if request.seed is not None:
            body["seed"] = request.seed
        extra: dict[str, Any] = {}
        if self.dialect == "vllm":
            extra.update(top_k=request.top_k, repetition_penalty=request.repetition_penalty)
            if self.frames_as == "video" and request.frames is not None:
                extra["media_io_kwargs"] = {"video": _video_kwargs(request.frames)}
        if extra:
            body["extra_body"] = extra
        return body

    def _message(self, message: dict[str, Any], frames: Frames | None) -> dict[str, Any]:
        content = message["content"]
        if isinstance(content, str):
            return {"role": message["role"], "content": content}
        if all(p.get("type") == "text" for p in content) and message["role"] != "user":
            # system/assistant as plain strings: several compatible servers accept only those there
            return {"role": message["role"], "content": "".join(p["text"] for p in content)}
        parts: list[dict[str, Any]] = []
        for part in content:
            if part.get("type") == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif part.get("type") == "video":
                if frames is None:
                    raise ValueError("a video placeholder without frames")
                parts += self._video_parts(frames)
            else:
                raise ConfigError(f"the openai backend cannot send a '{part.get('type')}' message part")
        return {"role": message["role"], "content": parts}

    def _video_parts(self, frames: Frames) -> list[dict[str, Any]]:
        encoded = [_encode(frame, self.image_format, self.jpeg_quality) for frame in frames.array]
        if self.frames_as == "video":
            # vLLM splits the payload on commas and opens each part with PIL (so PNG works too)
            return [{"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + ",".join(encoded)}}]
        mime = "image/png" if self.image_format == "png" else "image/jpeg"
        parts: list[dict[str, Any]] = []
        for t, data in zip(frames.timestamps, encoded):
            parts.append({"type": "text", "text": f"<{t:.1f} seconds>"})
            parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
        return parts

    # ------------------------------------------------------------------------------------------------ sending
    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        if not requests:
            return []
        bodies = [self.body(r) for r in requests]  # a refused option stops here, before anything is sent
        return asyncio.run(self._send_all(bodies))

    async def _send_all(self, bodies: list[dict[str, Any]]) -> list[GenResult]:
        from openai import AsyncOpenAI

        # max_retries=0: the client's own retries have no total bound and skip malformed replies; ours do both
        async with AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, timeout=self.timeout_s,
                               max_retries=0) as client:
            gate = asyncio.Semaphore(self.max_concurrency)
            return list(await asyncio.gather(*(self._send(client, gate, b) for b in bodies)))

    async def _send(self, client, gate: asyncio.Semaphore, body: dict[str, Any]) -> GenResult:
        waited, attempts, reason = 0.0, 0, ""
        while True:
            attempts += 1
            async with gate:
                await self._pace()
                try:
                    reply = await client.chat.completions.create(model=self.model_name, **body)
                    return _result(reply)
                except Exception as exc:  # classified below: the API's errors, transport errors, bad replies
                    retry, reason, after = _classify(exc)
            if not retry:
                return _failed(f"API request refused: {reason}")
            delay = after if after is not None else random.uniform(0, min(BACKOFF_CAP_S,
                                                                          self.backoff_base_s * 2 ** attempts))
            if attempts > self.request_retries or waited + delay > self.retry_max_wait_s:
                return _failed(f"API request failed: {reason} (after {attempts} attempts, {waited:.1f} s of "
                               "backoff)")
            waited += delay
            await asyncio.sleep(delay)

    async def _pace(self) -> None:
        """Space request starts ``60 / max_requests_per_minute`` seconds apart (held under the semaphore, so the
        pace is global for this backend)."""
        if not self.min_interval:
            return
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self.min_interval
        if start > now:
            await asyncio.sleep(start - now)

    def close(self) -> None:
        pass


# -------------------------------------------------------------------------------------------------- helpers
def _api_key(env: str, base_url: str | None) -> str:
    from reasonkit.secrets import register_secret_env

    register_secret_env(env)  # its value is masked in every log, manifest and error record from now on
    key = os.environ.get(env)
    if key:
        return key
    if base_url is None:
        raise ConfigError(f"model.api_key_env: the environment variable {env} is not set (the API key is read "
                          "from the environment only)")
    return "none"  # local servers (vllm serve, SGLang) take any key; the client insists on one


def _encode(frame, image_format: str, quality: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.fromarray(frame)
    if image_format == "png":
        image.save(buffer, "PNG")
    else:
        image.save(buffer, "JPEG", quality=quality)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _video_kwargs(frames: Frames) -> dict[str, Any]:
    """vLLM's per-request media_io_kwargs for a frame-sequence video: the metadata the `vllm` backend passes."""
    meta = frames.metadata()
    # vLLM insists on integer indices; fractional ones (a timestamp-derived index) are rounded
    indices = [int(round(i)) for i in meta["frames_indices"]]
    return {"num_frames": len(frames.array), "fps": float(meta["fps"]), "frames_indices": indices,
            "total_num_frames": max(int(meta["total_num_frames"]), len(indices)),
            "duration": float(meta["duration"]), "do_sample_frames": False}


def _result(reply) -> GenResult:
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise MalformedReply(f"no choices in the reply ({str(reply)[:120]!r})")
    texts = []
    for choice in choices:
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None) if message is not None else None
        if content is not None and not isinstance(content, str):
            raise MalformedReply(f"message content is {type(content).__name__}, not text")
        texts.append(content or "")
    usage = getattr(reply, "usage", None)
    return GenResult(texts=texts, token_ids=[], prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                     completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))


def _failed(reason: str) -> GenResult:
    from reasonkit.secrets import scrub_text

    return GenResult(texts=[""], error=scrub_text(reason))


class MalformedReply(Exception):
    """A 200 reply without the shape of a chat completion."""


def _classify(exc: Exception) -> tuple[bool, str, float | None]:
    """(retry?, one-line reason, Retry-After seconds or None)."""
    import json

    import openai

    if isinstance(exc, openai.APITimeoutError):
        return True, "timed out", None
    if isinstance(exc, openai.APIConnectionError):
        return True, f"connection failed ({exc.__cause__ or exc})", None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        text = " ".join(str(getattr(exc, "message", exc)).split())[:200]
        return status in RETRY_STATUS or status >= 500, f"HTTP {status}: {text}", _retry_after(exc.response)
    # a 200 whose body is not JSON surfaces as the client's JSONDecodeError; one without a completion's shape
    # as ours (the client builds its models without validation)
    if isinstance(exc, (MalformedReply, openai.APIResponseValidationError, json.JSONDecodeError)):
        return True, f"malformed reply ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})", None
    raise exc  # a bug of ours, not the server's: let it surface


def _retry_after(response) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), None if absent/unreadable."""
    headers = getattr(response, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
