"""A minimal OpenAI-compatible chat client (e.g. `vllm serve`), with retries, on the standard library only.

Faults (timeouts, connection errors, 5xx, 429, unparsable bodies) are retried with exponential backoff; after the
last try `EndpointError` is raised so callers can count the row as an error — never silently as a safe answer.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


class EndpointError(RuntimeError):
    """The endpoint kept failing (or answered garbage) after every retry."""


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
                if e.code < 500 and e.code != 429:
                    break  # a client error will not fix itself
            except (urllib.error.URLError, TimeoutError, OSError, ValueError, KeyError, IndexError, TypeError) as e:
                last = e
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise EndpointError(f"{self.url}: {type(last).__name__}: {last}")
