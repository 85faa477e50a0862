"""Optional LLM judge: ask an OpenAI-compatible server to *extract* the final answer.

The judge only pulls the final answer out of a free-form response (the job regexes do
badly on long reasoning chains); whether that answer is right is still decided by
``mergekit_vlm.evaluate.scoring.score`` applied to the extracted text, so a judge can never
mark a wrong answer correct by being lenient.

Any server speaking ``POST {url}/chat/completions`` works (vLLM, SGLang, llama.cpp,
Ollama, OpenAI itself). Only the standard library is used.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Optional

from mergekit_vlm.errors import MergekitVlmError

SYSTEM_PROMPT = (
    "You extract the final answer from a model's response to a question. Reply with the final "
    "answer only, exactly as the response states it, with no explanation and no extra words: "
    "a number (digits, without units), an option letter for multiple-choice questions (e.g. B), "
    "or a short expression or phrase. If the response gives no final answer, reply NONE."
)

USER_TEMPLATE = "Question:\n{question}\n\nResponse:\n{response}\n\nFinal answer:"

# Replies that mean "no answer in this response".
NO_ANSWER = {"", "none", "n/a", "no answer", "null"}


class Judge:
    """A client for ``POST {url}/chat/completions`` that extracts final answers.

    ``url`` is the API base (``http://host:8000/v1``); a URL that already ends in
    ``/chat/completions`` is used as is. ``api_key`` is sent as a Bearer token when given.
    Transient failures (connection errors, 429 and 5xx) are retried ``retries`` times with
    a pause of ``backoff`` seconds, doubling; anything else, or a reply without ``choices[0].message.content``,
    raises ``MergekitVlmError``.
    """

    def __init__(
        self,
        url: str,
        model: str,
        api_key: Optional[str] = None,
        timeout: float = 60,
        *,
        retries: int = 2,
        backoff: float = 1.0,
        max_tokens: int = 64,
    ):
        if not url or not model:
            raise MergekitVlmError("the judge needs both a URL (--judge-url) and a model name (--judge-model)")
        self.url = url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.calls = 0

    @property
    def endpoint(self) -> str:
        if self.url.endswith("/chat/completions"):
            return self.url
        return self.url + "/chat/completions"

    def describe(self) -> dict:
        """What the summary and each prediction record about the judge (never the key)."""
        return {"url": self.url, "model": self.model}

    def messages(self, question: str, response: str) -> list:
        return [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(question=question.strip(), response=response.strip())},
        ]

    def complete(self, messages: list) -> str:
        """The text of the first choice for ``messages`` (temperature 0)."""
        body = json.dumps(
            {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2.0 ** (attempt - 1), 10.0))
            request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            self.calls += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    payload = json.loads(reply.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                detail = e.read()[:200].decode("utf-8", "replace").replace("\n", " ")
                last_error = f"HTTP {e.code} {detail}".strip()
                if e.code == 429 or e.code >= 500:
                    continue
                break
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last_error = str(getattr(e, "reason", e))
                continue
            except ValueError as e:  # not JSON
                last_error = f"reply is not JSON ({e})"
                break
            try:
                content = payload["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                last_error = f"reply has no choices[0].message.content: {json.dumps(payload)[:200]}"
                break
            return content if isinstance(content, str) else ""
        raise MergekitVlmError(f"judge {self.endpoint} (model {self.model}) failed: {last_error}")

    def extract(self, question: str, response: str) -> Optional[str]:
        """The final answer the judge reads in ``response``, or None when it finds none."""
        if not response.strip():
            return None
        answer = self.complete(self.messages(question, response)).strip()
        # Reasoning servers sometimes echo a label or wrap the answer; keep the answer.
        for prefix in ("final answer:", "answer:"):
            if answer.lower().startswith(prefix):
                answer = answer[len(prefix):].strip()
        answer = answer.strip().strip("`").strip()
        if answer.lower().rstrip(".") in NO_ANSWER:
            return None
        return answer

    def check(self) -> None:
        """One small request, so a wrong URL or model name fails before any generation."""
        self.complete([{"role": "user", "content": "Reply with OK."}])
