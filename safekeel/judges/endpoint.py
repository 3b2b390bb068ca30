"""A minimal OpenAI-compatible chat client (e.g. `vllm serve`), with retries, on the standard library only.

Faults (timeouts, connection errors, 5xx, 429, unparsable bodies) are retried with exponential backoff; after the
last try `EndpointError` is raised so callers can count the row as an error — never silently as a safe answer.
A 4xx other than 429 is the caller's mistake (wrong model name, missing key, bad request): `EndpointRejected` is
raised at once with the server's message, and callers stop instead of marking every row an error. `chat_many`
keeps at most `concurrency` requests in flight.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..errors import SafekeelError


class EndpointError(RuntimeError):
    """The endpoint kept failing (or answered garbage) after every retry."""


class EndpointRejected(EndpointError, SafekeelError):
    """The endpoint refused the request itself (4xx other than 429): retrying or going on would not help."""


@dataclass
class ChatEndpoint:
    url: str  # base URL, e.g. http://host:8000/v1 (the /chat/completions path is added)
    model: str = "default"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0  # seconds, doubled per retry
    max_tokens: int = 512
    temperature: float = 0.0
    concurrency: int = 8  # requests in flight at once in chat_many

    def _post(self, messages: list[dict]) -> str:
        url = self.url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url += "/chat/completions"
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": self.max_tokens,
                           "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        content = data["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise ValueError("no text content in the answer")
        return content

    def chat(self, messages: list[dict]) -> str:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return self._post(messages)
            except urllib.error.HTTPError as e:
                last = e
                if e.code < 500 and e.code != 429:  # a client error will not fix itself
                    raise EndpointRejected(self._rejection(e)) from None
            except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
                last = e
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise EndpointError(f"{self.url}: {type(last).__name__}: {last}")

    def _rejection(self, e: urllib.error.HTTPError) -> str:
        try:
            body = e.read().decode("utf-8", "replace")
            detail = json.loads(body).get("error", body)
            detail = detail.get("message", detail) if isinstance(detail, dict) else detail
        except (OSError, ValueError, AttributeError):
            detail = ""
        hint = {401: f"set the API key in ${self.api_key_env}", 403: f"check the API key in ${self.api_key_env}",
                404: f"is '{self.model}' the name the server serves? (--judge-endpoint-model / "
                     "--attacker-endpoint-model; GET /v1/models lists them)"}.get(e.code, "")
        return f"{self.url}: HTTP {e.code} {e.reason}: {str(detail)[:300]}" + (f" ({hint})" if hint else "")

    def chat_many(self, conversations: list[list[dict]]) -> list[str | EndpointError]:
        """One reply per conversation, in order, `concurrency` at a time; a conversation that kept failing gives
        its EndpointError in place of a text. A rejection (4xx) is raised."""
        from concurrent.futures import ThreadPoolExecutor

        def one(messages: list[dict]) -> str | EndpointError:
            try:
                return self.chat(messages)
            except EndpointRejected:
                raise
            except EndpointError as e:
                return e

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(one, conversations))
