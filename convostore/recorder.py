"""Recording ``genai.Client`` traffic into a ``Store``: the public entry points.

    client = convostore.record(genai.Client(), store=store)
    with convostore.recorder.annotate(labels={"run": "nightly"}):
        client.interactions.create(model=..., input=...)

The machinery lives in ``convostore.recording`` (transport seam, SSE assembly, rows).
"""

from .recording.context import annotate, current_annotations
from .recording.core import Recorder
from .recording.methods import record

__all__ = ["Recorder", "annotate", "current_annotations", "record"]
