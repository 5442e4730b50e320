"""Run by the retired google-genai 1.x: a function call and its result, then a rebuild.

    python resume_sdk1.py BASE_URL DB_PATH

The sandbox forgets the chain (its ``/_sandbox/expire`` control) after the function
result, so the next turn is rebuilt from the archive in the 1.x ``{role, content}``
turns form; tests/test_recorder_sdk1.py checks what reached the sandbox.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import warnings

warnings.simplefilter("ignore")

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

import convostore  # noqa: E402

MODEL = "gemini-2.5-flash"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def main(base_url: str, db: str) -> dict:
    assert genai.__version__.startswith("1."), genai.__version__
    store = convostore.Store(db)
    client = convostore.record(
        genai.Client(api_key="sdk1-secret-key", http_options=types.HttpOptions(base_url=base_url)), store=store
    )
    t1 = client.interactions.create(model=MODEL, input="My name is Ada. Use get_weather for Paris.", tools=TOOLS)
    call = next(o for o in t1.outputs if o.type == "function_call")
    result = {"type": "function_result", "call_id": call.id, "name": call.name, "result": "sunny, 21 C"}
    t2 = client.interactions.create(model=MODEL, input=[result], previous_interaction_id=t1.id, tools=TOOLS)
    urllib.request.urlopen(urllib.request.Request(f"{base_url}/_sandbox/expire", method="POST"), timeout=30).read()
    t3 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t2.id)
    client.interactions.get(t3.id)  # a later GET must not rewrite the rebuilt turn's outputs
    return {"ids": [t1.id, t2.id, t3.id], "call_id": call.id, "t3_text": t3.outputs[-1].text}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
