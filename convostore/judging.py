"""A model grades replayed answers against the originals: a 0..1 score and a one-line reason.

Every judge call goes through the recorded client, so it is archived like any other
interaction (``link="judge"``, tagged with the run and the replayed answer it graded).
Its conversation id is ``judge:<key>``, the key a hash of (question, original answer,
replayed answer, judge model, rubric): the archive is the cache, so comparing the same
runs again with the same judge and rubric sends nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from . import wire
from .errors import ConvostoreError

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

log = logging.getLogger("convostore")

#: The model the sandbox answers as a deterministic judge (``convostore.sandbox.models``).
SANDBOX_JUDGE = "sandbox-judge"

DEFAULT_RUBRIC = (
    "You grade a replayed answer against the original answer to the same user message. "
    "Score 1.0 when the replay says the same things (facts, names, tool calls, refusals) as the original, "
    "however worded; lower it for each thing missing, added or contradicted; 0.0 when it answers something else."
)

_PROMPT = """{rubric}

Reply with one JSON object and nothing else: {{"score": <number from 0 to 1>, "reason": "<one line>"}}

<user>
{question}
</user>
<original>
{original}
</original>
<replay>
{replay}
</replay>
"""

#: (question, original answer, replayed answer, run id, replayed interaction id)
Item = tuple[str, str, str, "str | None", "str | None"]


def read_rubric(path: str | None) -> str | None:
    """A rubric file's text, or a one-line error."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError as exc:
        raise ConvostoreError(f"cannot read rubric {path!r}: {exc.strerror or exc}") from None
    if not text:
        raise ConvostoreError(f"rubric {path!r} is empty")
    return text


def parse_grade(text: str) -> tuple[float, str]:
    """The score and reason in a judge's answer (the first JSON object in it), or ValueError."""
    match = re.search(r"\{.*\}", text, re.S)
    if match is None:
        raise ValueError("no JSON object in the judge's answer")
    data = orjson.loads(match.group(0))
    score = data.get("score") if isinstance(data, dict) else None
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise ValueError("the judge's answer has no numeric score")
    reason = " ".join(str(data.get("reason") or "").split())[:200]
    return min(1.0, max(0.0, float(score))), reason


class Judge:
    """Grades with ``model`` through ``client`` (a recorded client), caching in ``store``.

    ``requests`` counts the judge calls this object sent; ``cached`` the grades it found.
    """

    def __init__(self, store: "Store", model: str, *, client: Any = None, rubric: str | None = None) -> None:
        self.store = store
        self.model = model
        self.rubric = rubric or DEFAULT_RUBRIC
        self.rubric_hash = hashlib.sha256(self.rubric.encode()).hexdigest()[:16]
        self._client = client
        self.requests = 0
        self.cached = 0

    @property
    def client(self) -> Any:
        if self._client is None:
            from .client import make_client

            self._client = make_client(self.store)
        return self._client

    def key(self, question: str, original: str, replay: str) -> str:
        """The cache key: the answer pair (and its question), the judge model and the rubric."""
        blob = orjson.dumps([self.model, self.rubric_hash, question, original, replay])
        return hashlib.sha256(blob).hexdigest()[:32]

    def grade(self, items: Sequence[Item]) -> list[tuple[float | None, str | None]]:
        """A (score, reason) per item; (None, why) when the judge failed (not cached, tried again next time)."""
        keys = [f"judge:{self.key(q, o, r)}" for q, o, r, _, _ in items]
        found: dict[str, tuple[float, str]] = {}
        if keys:
            for row in self.store.list(conversation=list(dict.fromkeys(keys))):
                if row.status == "completed" and row.conversation_id not in found:
                    try:
                        found[row.conversation_id] = parse_grade(row.output_text or "")
                    except ValueError:
                        continue
        out: list[tuple[float | None, str | None]] = []
        for key, (question, original, replay, run_id, replay_id) in zip(keys, items):
            if key in found:
                self.cached += 1
                out.append(found[key])
                continue
            grade = self._ask(key, question, original, replay, run_id, replay_id)
            if grade[0] is not None:
                found[key] = (grade[0], grade[1] or "")
            out.append(grade)
        return out

    def _ask(self, key: str, question: str, original: str, replay: str, run_id: str | None,
             replay_id: str | None) -> tuple[float | None, str | None]:
        from .recorder import annotate

        prompt = _PROMPT.format(rubric=self.rubric, question=question, original=original, replay=replay)
        self.requests += 1
        try:
            with annotate(conversation_id=key, link="judge", replay_run_id=run_id, source_id=replay_id,
                          labels={"judge": self.model, "rubric": self.rubric_hash}):
                answer = self.client.interactions.create(model=self.model, input=prompt)
            body = answer.model_dump(mode="json", exclude_none=True) if hasattr(answer, "model_dump") else dict(answer)
            text = wire.output_text(wire.normalize_output(body))
            return parse_grade(text)
        except ValueError as exc:
            log.warning("judge %s: unreadable grade: %s", self.model, exc)
            return None, f"judge failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - SDK error classes differ by generation
            log.warning("judge %s failed: %s", self.model, exc)
            return None, f"judge failed: {type(exc).__name__}"
