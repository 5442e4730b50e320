"""convostore: a local, lossless archive of Gemini Interactions API conversations."""

from __future__ import annotations

__version__ = "0.1.0"
