"""A stored chain turned into the stateless ``input`` that continues it.

The server's ``previous_interaction_id`` carries inputs and outputs only; once the
server has forgotten a chain, the same context can be sent again as an explicit list
of steps. That list is built here from the archive in one query, whatever the chain's
length, and with the per-turn settings (system instruction, tools, generation config)
that the server never carries forward.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import wire

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

Format = Literal["steps", "turns"]

#: Links whose stored input is only the turn's own input (no re-sent history).
_NO_HISTORY = frozenset({"server", "continuation"})


@dataclass
class History:
    """The rebuilt context of a chain, ready to send as ``input``."""

    input: list[dict[str, Any]]
    head_id: str
    model: str | None
    turns: int
    system_instruction: Any = None
    tools: Any = None
    generation_config: Any = None
    dropped_thoughts: int = 0
    format: Format = "steps"
    extra: dict[str, Any] = field(default_factory=dict)

    def create_kwargs(self, new_input: Any = None) -> dict[str, Any]:
        """Keyword arguments for ``interactions.create`` that continue the chain statelessly."""
        steps = list(self.input)
        if new_input is not None:
            new = wire.normalize_input(new_input)
            steps += wire.steps_to_turns(new) if self.format == "turns" else new
        kwargs: dict[str, Any] = {"input": steps}
        if self.model:
            kwargs["model"] = self.model
        for key in ("system_instruction", "tools", "generation_config"):
            value = getattr(self, key)
            if value is not None:
                kwargs[key] = value
        return kwargs

    def to_json(self) -> dict[str, Any]:
        return {
            "head_id": self.head_id,
            "model": self.model,
            "turns": self.turns,
            "format": self.format,
            "input": self.input,
            "system_instruction": self.system_instruction,
            "tools": self.tools,
            "generation_config": self.generation_config,
            "dropped_thoughts": self.dropped_thoughts,
        }


def turn_steps(row: Any, *, first: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One stored turn's own input (without history it repeated) and its output.

    A stateless or rebuilt turn's stored input starts with the history it re-sent;
    that history is already in the chain above it, so only the new part counts. The
    first turn of a chain keeps everything: nothing above it holds that history.
    """
    steps = row.input_steps or []
    if not first and row.link not in _NO_HISTORY:
        _, steps = wire.split_history(steps)
    return steps, row.output_steps or []


def history(
    store: "Store",
    interaction_id: str,
    *,
    model: str | None = None,
    format: Format = "steps",
) -> History:
    """The ``input`` that continues the chain ending at ``interaction_id``.

    Thought steps keep their signatures byte for byte when ``model`` is the model that
    produced them and are dropped for any other model (a signature means nothing to
    another model). ``model=None`` means the chain's last model.
    """
    if format not in ("steps", "turns"):
        raise ValueError(f"format must be 'steps' or 'turns', not {format!r}")
    # A long chain is tens of thousands of fresh, acyclic containers: pausing the
    # cyclic GC while they are made roughly halves the rebuild time.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _history(store, interaction_id, model=model, format=format)
    finally:
        if paused:
            gc.enable()


def _history(store: "Store", interaction_id: str, *, model: str | None, format: Format) -> History:
    chain = store.chain_turns(interaction_id)
    return from_chain(chain, model=model, format=format)


def add_turn(steps: list[dict[str, Any]], row: Any, target: str | None, *, first: bool) -> int:
    """Append one stored turn's steps for a request to ``target``; returns thoughts dropped.

    The unit ``history`` is built from, exposed so replay can grow one conversation's
    history turn by turn instead of querying the chain again at every turn.
    """
    inputs, outputs = turn_steps(row, first=first)
    if row.model == target:
        steps += inputs
        steps += outputs
        return 0
    dropped = 0
    for step in (*inputs, *outputs):
        if step.get("type") == "thought":
            dropped += 1
        else:
            steps.append(step)
    return dropped


def from_chain(chain: list[Any], *, model: str | None = None, format: Format = "steps") -> History:
    """``history`` of chain rows already read (root first, as ``Store.chain`` returns them)."""
    if not chain:
        raise ValueError("an empty chain has no history")
    head = chain[-1]
    target = model or head.model
    steps: list[dict[str, Any]] = []
    dropped = 0
    for i, row in enumerate(chain):
        dropped += add_turn(steps, row, target, first=i == 0)
    request = head.request or {}
    return History(
        input=wire.steps_to_turns(steps) if format == "turns" else steps,
        head_id=head.id,
        model=target,
        turns=len(chain),
        system_instruction=request.get("system_instruction"),
        tools=request.get("tools"),
        generation_config=request.get("generation_config"),
        dropped_thoughts=dropped,
        format=format,
    )
