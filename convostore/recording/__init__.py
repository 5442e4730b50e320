"""Recording internals: the HTTP seam, SSE assembly, per-call context, the recorder.

The public names are re-exported by ``convostore.recorder``.
"""

from .context import annotate, current_annotations
from .methods import record

__all__ = ["annotate", "current_annotations", "record"]
