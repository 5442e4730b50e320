"""What a turn cost: a per-model price table, shipped dated and overridable.

The shipped table (``convostore/data/prices.json``) holds the public list prices and the
date they were taken. ``CONVOSTORE_PRICES`` or ``--prices FILE`` (same shape; its models
replace the shipped ones by name) corrects or extends it. A model the table does not
know has no cost: callers show its tokens and "cost unknown", never a guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from .errors import ConvostoreError

ENV_VAR = "CONVOSTORE_PRICES"
_KINDS = ("input", "output", "thought", "cached_input")


@dataclass(frozen=True)
class Rates:
    """USD per million tokens of each kind; ``cached_input`` None when not published."""

    input: float
    output: float
    thought: float
    cached_input: float | None = None


@dataclass(frozen=True)
class Price:
    """A model's rates, and the dearer ones above a prompt size where the API has them."""

    base: Rates
    long_context: Rates | None = None
    long_above: int | None = None  # input tokens past which ``long_context`` applies

    def rates(self, input_tokens: int) -> Rates:
        if self.long_context is not None and self.long_above is not None and input_tokens > self.long_above:
            return self.long_context
        return self.base


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name, with where and when they were taken."""

    models: dict[str, Price]
    taken: str | None = None
    source: str | None = None

    def price(self, model: str | None) -> Price | None:
        """The model's price, or None when the table does not know it."""
        if not model:
            return None
        return self.models.get(model.removeprefix("models/"))

    def cost(self, model: str | None, *, input_tokens: int | None, output_tokens: int | None,
             thought_tokens: int | None = 0, cached_tokens: int | None = 0) -> float | None:
        """USD for one call, or None (unknown model, no token counts, or cached input without a cached price).

        ``input_tokens`` includes the cached ones, as the API counts them.
        """
        price = self.price(model)
        if price is None or input_tokens is None or output_tokens is None:
            return None
        rates = price.rates(input_tokens)
        cached = cached_tokens or 0
        if cached and rates.cached_input is None:
            return None
        usd = (
            (input_tokens - cached) * rates.input
            + cached * (rates.cached_input or 0.0)
            + output_tokens * rates.output
            + (thought_tokens or 0) * rates.thought
        )
        return usd / 1_000_000

    def describe(self) -> dict[str, Any]:
        """Where the prices come from, for reports."""
        return {"taken": self.taken, "source": self.source, "models": sorted(self.models)}


def _rates(name: str, raw: Any, where: str) -> Rates:
    if not isinstance(raw, dict):
        raise ConvostoreError(f"{where}: model {name!r} must map to an object of prices")
    values: dict[str, float | None] = {}
    for kind in _KINDS:
        value = raw.get(kind)
        if value is None and kind == "thought":
            value = raw.get("output")  # the API bills thinking as output
        if value is None:
            if kind == "cached_input":
                values[kind] = None
                continue
            raise ConvostoreError(f"{where}: model {name!r} has no {kind!r} price")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConvostoreError(f"{where}: model {name!r} {kind!r} must be a number >= 0, not {value!r}")
        values[kind] = float(value)
    return Rates(input=values["input"] or 0.0, output=values["output"] or 0.0,
                 thought=values["thought"] or 0.0, cached_input=values["cached_input"])


def parse_prices(data: Any, where: str = "prices") -> PriceTable:
    """A table from the JSON shape of ``data/prices.json``; a bad entry is a one-line error."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ConvostoreError(f"{where}: expected an object with a \"models\" object")
    models: dict[str, Price] = {}
    for name, raw in data["models"].items():
        long_raw = raw.get("long_context") if isinstance(raw, dict) else None
        long_rates = _rates(name, long_raw, where) if long_raw is not None else None
        above = long_raw.get("above_input_tokens") if isinstance(long_raw, dict) else None
        if long_raw is not None and not isinstance(above, int):
            raise ConvostoreError(f"{where}: model {name!r} long_context needs an integer above_input_tokens")
        models[name] = Price(_rates(name, raw, where), long_rates, above)
    taken, source = data.get("taken"), data.get("source")
    return PriceTable(models, str(taken) if taken else None, str(source) if source else None)


def _read(path: str | os.PathLike[str]) -> Any:
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConvostoreError(f"cannot read prices file {os.fspath(path)!r}: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ConvostoreError(f"prices file {os.fspath(path)!r} is not JSON: {exc}") from None


def shipped_prices() -> PriceTable:
    """The table shipped with convostore."""
    raw = resources.files("convostore").joinpath("data/prices.json").read_bytes()
    return parse_prices(orjson.loads(raw), "convostore/data/prices.json")


def load_prices(path: str | os.PathLike[str] | None = None) -> PriceTable:
    """The shipped table, overridden by ``path`` (else ``$CONVOSTORE_PRICES``) model by model."""
    table = shipped_prices()
    override = path if path is not None else os.environ.get(ENV_VAR) or None
    if override is None:
        return table
    extra = parse_prices(_read(override), os.fspath(override))
    return PriceTable({**table.models, **extra.models}, extra.taken or table.taken, extra.source or table.source)


def _usd(rates: Rates, input_tokens: int, output_tokens: int, thought_tokens: int, cached_tokens: int) -> float | None:
    if cached_tokens and rates.cached_input is None:
        return None
    return ((input_tokens - cached_tokens) * rates.input + cached_tokens * (rates.cached_input or 0.0)
            + output_tokens * rates.output + thought_tokens * rates.thought) / 1_000_000


def usage_cost(table: PriceTable, usage: dict[str, Any]) -> float | None:
    """USD for one ``Store.usage()`` line (a model's token sums), or None when it cannot be known.

    Prompts past the model's long-context threshold are billed at its long-context
    rates: exact when the line counts them apart at that threshold (``long_context``);
    unknown when it cannot tell (another threshold, and prompts past 200k tokens).
    Unknown too: no price for the model, cached tokens without a cached price.
    """
    price = table.price(usage.get("model"))
    if price is None:
        return None
    sums = [int(usage.get(k) or 0) for k in ("input", "output", "thought", "cached")]
    long = usage.get("long_context")
    if price.long_context is None or price.long_above is None:
        return _usd(price.base, *sums)
    if isinstance(long, dict):
        long_sums = [int(long.get(k) or 0) for k in ("input", "output", "thought", "cached")]
        if long.get("above") == price.long_above:
            short = _usd(price.base, *(a - b for a, b in zip(sums, long_sums)))
            dear = _usd(price.long_context, *long_sums) if long.get("calls") else 0.0
            return None if short is None or dear is None else short + dear
        if not long.get("calls") and int(long.get("above") or 0) <= price.long_above:
            return _usd(price.base, *sums)  # no prompt past the lower threshold
        return None
    if usage.get("max_input", 0) > price.long_above:
        return None
    return _usd(price.base, *sums)


def cost_summary(table: PriceTable, usage: list[dict[str, Any]]) -> dict[str, Any]:
    """Per model: calls, tokens and cost; the total (None if any model's cost is unknown)."""
    models = []
    total: float | None = 0.0
    for u in sorted(usage, key=lambda u: str(u.get("model"))):
        cost = usage_cost(table, u)
        models.append({**{k: v for k, v in u.items() if k != "run"}, "cost_usd": cost})
        total = None if cost is None or total is None else total + cost
    return {"prices_taken": table.taken, "models": models, "cost_usd": total}
