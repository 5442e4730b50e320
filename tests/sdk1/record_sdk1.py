"""Run by the retired google-genai 1.x (``/work/venv1``): record through its Stainless client.

    python record_sdk1.py BASE_URL DB_PATH

Prints one JSON object with the ids it made; tests/test_recorder_sdk1.py checks the rows
from the current SDK's side, in the same database file.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import warnings

warnings.simplefilter("ignore")

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

import convostore  # noqa: E402

MODEL = "gemini-2.5-flash"


def main(base_url: str, db: str) -> dict:
    assert genai.__version__.startswith("1."), genai.__version__
    store = convostore.Store(db)
    client = convostore.record(
        genai.Client(api_key="sdk1-secret-key", http_options=types.HttpOptions(base_url=base_url)), store=store
    )
    out: dict = {"version": genai.__version__}
    t1 = client.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    out["chain"] = [t1.id, t2.id]
    out["t2_text"] = t2.outputs[-1].text

    text = ""
    for event in client.interactions.create(model=MODEL, input="Tell me a long story.", stream=True):
        if getattr(event, "event_type", None) == "content.delta" and getattr(event.delta, "type", None) == "text":
            text += event.delta.text
    out["stream_text"] = text

    stream = client.interactions.create(model=MODEL, input="Tell me another long story.", stream=True)
    next(iter(stream))
    stream.close()

    bg = client.interactions.create(model=MODEL, input="Research cricket history.", background=True)
    got = bg
    for _ in range(500):
        got = client.interactions.get(bg.id)
        if got.status == "completed":
            break
        time.sleep(0.01)
    out["background"] = bg.id

    gone = client.interactions.create(model=MODEL, input="Forget me.")
    client.interactions.delete(gone.id)
    out["deleted"] = gone.id

    async def aio() -> str:
        return (await client.aio.interactions.create(model=MODEL, input="Async hello.")).id

    out["async"] = asyncio.run(aio())
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
