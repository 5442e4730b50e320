"""Run by the retired google-genai 1.x: one conversation, through the proxy or recorded.

    python proxy_sdk1.py BASE_URL [DB_PATH]

With DB_PATH the client is ``record()``ed into it (the reference); without, it is a plain
client, pointed at a proxy. The sandbox is told to forget the chain through BASE_URL
(``/_sandbox/expire``: through a proxy, a pass-through call). Prints the ids as JSON.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import warnings

warnings.simplefilter("ignore")

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

MODEL = "gemini-2.5-flash"


def main(base_url: str, db: str | None) -> dict:
    assert genai.__version__.startswith("1."), genai.__version__
    client = genai.Client(api_key="sdk1-proxy-key-5e6f", http_options=types.HttpOptions(base_url=base_url))
    if db:
        import convostore

        client = convostore.record(client, store=convostore.Store(db))
    t1 = client.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    urllib.request.urlopen(urllib.request.Request(f"{base_url}/_sandbox/expire", method="POST"), timeout=30).read()
    t3 = client.interactions.create(model=MODEL, input="Do you still remember me?", previous_interaction_id=t2.id)
    text = ""
    for event in client.interactions.create(model=MODEL, input="Tell me a long story.", stream=True):
        if getattr(event, "event_type", None) == "content.delta" and getattr(event.delta, "type", None) == "text":
            text += event.delta.text
    gone = client.interactions.create(model=MODEL, input="Forget me.")
    client.interactions.delete(gone.id)
    return {"version": genai.__version__, "chain": [t1.id, t2.id, t3.id], "t3_text": t3.outputs[-1].text,
            "stream_text": text}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
