"""The optional LLM judge against a real local HTTP server speaking the OpenAI chat API."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mergekit_vlm.errors import MergekitVlmError
from mergekit_vlm.evaluate.judge import Judge

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"
JUDGE_MODEL = "judge-7b-test"


class FakeOpenAI:
    """``POST /v1/chat/completions`` on 127.0.0.1, a free port, in a thread.

    ``reply`` is the content returned; ``status`` an HTTP error code to answer instead.
    Every request is recorded as (path, headers, json body).
    """

    def __init__(self, reply="B", status=200):
        self.reply, self.status = reply, status
        self.requests = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                owner.requests.append((self.path, dict(self.headers), body))
                if owner.status != 200:
                    payload, code = {"error": {"message": "boom"}}, owner.status
                elif self.path != "/v1/chat/completions":
                    payload, code = {"error": {"message": "not found"}}, 404
                else:
                    payload, code = {"choices": [{"index": 0, "message": {"role": "assistant",
                                                                          "content": owner.reply}}]}, 200
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


def test_judge_extracts_through_chat_completions():
    start = time.time()
    with FakeOpenAI(reply="B") as server:
        judge = Judge(server.url, JUDGE_MODEL, api_key="sk-test", timeout=5)
        assert judge.extract("Which option? A. 1 B. 2", "Let me think... so the answer is option (B).") == "B"
        server.reply = "  Final answer: 42 \n"
        assert judge.extract("What is 6*7?", "six sevens are 42") == "42"
        server.reply = "NONE"
        assert judge.extract("What is 6*7?", "I am not sure.") is None
        assert judge.extract("What is 6*7?", "   ") is None  # empty response: no request
    assert len(server.requests) == 3
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == JUDGE_MODEL and body["temperature"] == 0
    assert headers.get("Authorization") == "Bearer sk-test"
    assert body["messages"][0]["role"] == "system" and "final answer" in body["messages"][0]["content"]
    assert "option (B)" in body["messages"][-1]["content"] and "Which option?" in body["messages"][-1]["content"]
    assert judge.describe() == {"url": server.url, "model": JUDGE_MODEL}
    assert time.time() - start < 10


def test_judge_failures_are_one_line_errors():
    with FakeOpenAI(status=500) as server:
        judge = Judge(server.url, JUDGE_MODEL, timeout=5, retries=1, backoff=0.05)
        with pytest.raises(MergekitVlmError, match="HTTP 500") as info:
            judge.check()
        assert "\n" not in str(info.value) and JUDGE_MODEL in str(info.value)
        assert len(server.requests) == 2  # one retry on a 5xx
    with FakeOpenAI() as server:  # wrong path: 404 is not retried
        judge = Judge(server.url.replace("/v1", "/nope"), JUDGE_MODEL, timeout=5)
        with pytest.raises(MergekitVlmError, match="HTTP 404"):
            judge.check()
        assert len(server.requests) == 1
        # A URL that already names the endpoint is used as is.
        assert Judge(server.url + "/chat/completions", JUDGE_MODEL).endpoint == server.url + "/chat/completions"
    port = server.server.server_address[1]  # closed now: connection refused, fast
    with pytest.raises(MergekitVlmError, match="failed"):
        Judge(f"http://127.0.0.1:{port}/v1", JUDGE_MODEL, timeout=2, retries=0).check()
    with pytest.raises(MergekitVlmError, match="judge-model"):
        Judge("http://127.0.0.1:1/v1", "")


def test_eval_uses_the_judge_extraction(trios, tmp_path):
    """run_eval with a judge: one check request + one per item, the judge's answer is what
    score() sees, and the judge is recorded in every prediction and in the summary."""
    from mergekit_vlm.evaluate.runner import read_predictions, run_eval
    from mergekit_vlm.evaluate.scoring import score

    trio = trios("llava")
    out = tmp_path / "eval"
    with FakeOpenAI(reply="B") as server:
        judge = Judge(server.url, JUDGE_MODEL, timeout=10)
        summary = run_eval([str(trio.vlm)], ["mmstar"], out, data={"mmstar": str(FIXTURES / "mmstar")},
                           limit=3, max_new_tokens=4, device="cpu", judge=judge, progress=False)
        records = read_predictions(out / "predictions" / "vlm" / "mmstar.jsonl")
        assert len(records) == summary["results"][str(trio.vlm)]["mmstar"]["n"] > 0
        assert len(server.requests) == 1 + len(records)
        assert all(body["model"] == JUDGE_MODEL for _, _, body in server.requests)
        judged = [body["messages"][-1]["content"] for _, _, body in server.requests[1:]]
        for record, text in zip(records, judged):
            assert record["prompt"].strip() in text  # the judge saw the question ...
            assert record["response"].strip() in text  # ... and this response
            assert record["judge_extracted"] == "B"
            assert record["judge"] == {"url": server.url, "model": JUDGE_MODEL}
            expected = score("mmstar", record["row"], "B")
            assert record["correct"] == bool(expected.correct)
            assert record["extracted"] == expected.extracted
            assert record["method"].startswith("judge")
        n_correct = sum(r["correct"] for r in records)
        assert summary["results"][str(trio.vlm)]["mmstar"]["correct"] == n_correct
        assert n_correct == sum(1 for r in records if str(r["gold"]).strip().upper() == "B")
        saved = json.loads((out / "summary.json").read_text())
        assert saved["meta"]["judge"] == {"url": server.url, "model": JUDGE_MODEL}
        assert JUDGE_MODEL in (out / "summary.md").read_text()

        # --rescore without a judge scores the raw responses again and drops the judge fields.
        plain = run_eval([str(trio.vlm)], ["mmstar"], out, rescore=True, progress=False)
        assert plain["meta"]["judge"] is None
        assert all("judge_extracted" not in r for r in read_predictions(out / "predictions" / "vlm" / "mmstar.jsonl"))
        assert len(server.requests) == 1 + len(records)  # no new judge call
