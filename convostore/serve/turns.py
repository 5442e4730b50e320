"""A conversation for the page: its tree's branches and a branch's turns, step by step.

The tree comes from ``Store.tree_nodes`` (ids and links, no payloads); only the branch
shown is read in full (``Store.chain``). Steps are parsed from the stored JSON as it
is, so media stay references (``/media/<sha256>``) instead of being inlined into the
page; each stored text is handed to the templates as data (escaped) or as Markdown
rendered safely (``rich_text``).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from markupsafe import Markup, escape

from .. import wire
from ..rebuild import turn_steps
from .rich_text import markdown
from .templating import fragment, until

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Node, Row, Store

_MEDIA_PREFIX = "convostore-media:sha256:"
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
_INLINE_KINDS = {"image": "image", "audio": "audio", "video": "video"}
#: Branches listed on a conversation page (newest first); the rest are counted.
MAX_BRANCHES = 50


@dataclass
class Part:
    """One piece of a step: ``text`` (escaped as is), ``html`` (already safe), ``json``,
    or a medium (``image``, ``audio``, ``video``, ``file``) at ``src``."""

    kind: str
    text: str = ""
    html: Markup | None = None
    src: str = ""
    mime: str = ""

    def __html__(self) -> str:
        """The part as HTML, every stored value escaped (rendered here, not by a template
        include per part: a 100-turn page has hundreds of parts)."""
        k = self.kind
        if k == "text":
            return f'<div class="text">{escape(self.text)}</div>'
        if k == "html":
            return f'<div class="md">{self.html or ""}</div>'
        if k == "json":
            return f'<pre class="json">{escape(self.text)}</pre>'
        src, mime = escape(self.src), escape(self.mime)
        if k == "image":
            return f'<img class="media" data-testid="media-image" src="{src}" alt="image {mime}" loading="lazy">'
        if k in ("audio", "video"):
            return f'<{k} class="media" data-testid="media-{k}" controls preload="none" src="{src}"></{k}>'
        return f'<a class="media-file" data-testid="media-file" href="{src}">{mime or "file"} (download)</a>'


@dataclass
class Step:
    kind: str  # user, model, thought, call, result, other
    type: str
    parts: list[Part] = field(default_factory=list)
    signed: bool = False
    name: str = ""


@dataclass
class TurnView:
    row: Row
    steps: list[Step]
    forks: list[tuple[str, str]]  # (leaf id, its first words) of the other branches leaving here


@dataclass
class Branch:
    leaf: str
    turns: int
    text: str
    current: bool


class Tree:
    """A conversation's shape: children of each turn and the newest leaf under each."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = {n.id: n for n in nodes}
        self.children: dict[str | None, list[str]] = {}
        for n in nodes:  # oldest first, so children lists are oldest first too
            parent = n.parent_id if n.parent_id in self.nodes else None
            self.children.setdefault(parent, []).append(n.id)
        self.newest_leaf: dict[str, str] = {}
        self.depth: dict[str, int] = {}
        seen: set[str] = set()
        order: list[str] = []
        stack = [(root, 1) for root in reversed(self.children.get(None, []))]
        while stack:  # depth-first; a parent link loop is cut at the first repeat
            nid, depth = stack.pop()
            if nid in seen:
                continue
            seen.add(nid)
            order.append(nid)
            self.depth[nid] = depth
            stack.extend((c, depth + 1) for c in reversed(self.children.get(nid, [])))
        for nid in reversed(order):  # children before parents
            best = nid
            for c in self.children.get(nid, []):
                leaf = self.newest_leaf.get(c)
                if leaf is not None and self._newer(leaf, best if best != nid else None):
                    best = leaf
            self.newest_leaf[nid] = best

    def _newer(self, a: str, b: str | None) -> bool:
        if b is None:
            return True
        na, nb = self.nodes[a], self.nodes[b]
        return (na.recorded_at is not None, na.recorded_at, a) > (nb.recorded_at is not None, nb.recorded_at, b)

    def leaf_for(self, interaction_id: str) -> str:
        """The newest turn at the end of a branch through ``interaction_id``."""
        return self.newest_leaf.get(interaction_id, interaction_id)

    def leaves(self) -> list[str]:
        """Every branch's last turn, newest first."""
        out = [nid for nid in self.newest_leaf if not self.children.get(nid)]
        out.sort(key=lambda nid: (self.nodes[nid].recorded_at is not None, self.nodes[nid].recorded_at, nid), reverse=True)
        return out


def branches(tree: Tree, current: str) -> tuple[list[Branch], int]:
    """The branches to offer (newest first, at most MAX_BRANCHES) and how many more there are."""
    leaves = tree.leaves()
    shown = leaves[:MAX_BRANCHES]
    if current in leaves and current not in shown:
        shown[-1] = current
    out = [Branch(leaf, tree.depth.get(leaf, 0), tree.nodes[leaf].input_text or "", leaf == current) for leaf in shown]
    return out, len(leaves) - len(shown)


def _media_src(block: Mapping[str, Any], kind: str) -> str | None:
    data, mime = block.get("data"), str(block.get("mime_type") or "")
    if isinstance(data, str) and data.startswith(_MEDIA_PREFIX):
        digest = data[len(_MEDIA_PREFIX):]
        return f"/media/{digest}" if re.fullmatch(r"[0-9a-f]{64}", digest) else None
    if isinstance(data, str) and kind == "image" and mime.startswith("image/") and _BASE64.match(data):
        return f"data:{mime};base64,{''.join(data.split())}"  # a small image stored inline (img-src allows data:)
    return None


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode()


def _content(content: Any, as_markdown: bool) -> list[Part]:
    if isinstance(content, str):
        return [Part("html", html=markdown(content)) if as_markdown else Part("text", text=content)]
    parts: list[Part] = []
    for block in content if isinstance(content, list) else [content]:
        if not isinstance(block, Mapping):
            parts.append(Part("json", text=_json(block)))
            continue
        btype = str(block.get("type") or "")
        if btype == "text":
            text = block.get("text")
            text = text if isinstance(text, str) else ""
            parts.append(Part("html", html=markdown(text)) if as_markdown else Part("text", text=text))
        elif btype in wire.CONTENT_TYPES:
            mime = str(block.get("mime_type") or "")
            src = _media_src(block, btype)
            if src and btype in _INLINE_KINDS:
                parts.append(Part(_INLINE_KINDS[btype] if btype == "image" or src.startswith("/media/") else "file", src=src, mime=mime))
            elif src:
                parts.append(Part("file", src=src, mime=mime))
            else:  # a URI elsewhere, or inline data a page cannot show: named, never fetched
                uri = block.get("uri")
                parts.append(Part("text", text=f"[{btype}{' ' + mime if mime else ''}{': ' + uri if isinstance(uri, str) else ''}]"))
        else:
            parts.append(Part("json", text=_json(block)))
    return parts


def step_view(step: Mapping[str, Any]) -> Step:
    """One stored step as the page shows it."""
    stype = str(step.get("type") or "")
    if stype == "user_input":
        return Step("user", stype, _content(step.get("content"), as_markdown=False))
    if stype == "model_output":
        return Step("model", stype, _content(step.get("content"), as_markdown=True))
    if stype == "thought":
        summary = step.get("summary")
        parts = _content(summary, as_markdown=True) if summary else [Part("text", text="(no summary)")]
        return Step("thought", stype, parts, signed=bool(step.get("signature")))
    if stype == "function_call":
        return Step("call", stype, [Part("json", text=_json(step.get("arguments")))], name=str(step.get("name") or ""))
    if stype == "function_result":
        return Step("result", stype, [Part("json", text=_json(step.get("result")))], name=str(step.get("name") or ""))
    rest = {k: v for k, v in step.items() if k != "type"}
    return Step("other", stype, [Part("json", text=_json(rest))])


def _steps(raw: str | None) -> list[dict[str, Any]]:
    value = orjson.loads(raw) if raw else []
    return [s for s in value if isinstance(s, dict)] if isinstance(value, list) else []


@dataclass
class _Raw:
    """A row's steps parsed from the stored JSON without joining media back in."""

    link: str | None
    input_steps: list[dict[str, Any]]
    output_steps: list[dict[str, Any]]


def _forks(row: Row, tree: Tree, first: bool) -> list[tuple[str, str]]:
    """(leaf, first words) of the other branches that leave the turn before ``row``."""
    parent = row.parent_id if row.parent_id in tree.nodes else None
    if first and parent is None:
        return []
    return [(tree.leaf_for(sib), tree.nodes[sib].input_text or "") for sib in tree.children.get(parent, []) if sib != row.id]


class _TurnCache:
    """Rendered turns by everything they show: a page seen again (a reload, another
    branch through the same turns, 16 people on one conversation) renders nothing twice.
    The key holds the row's stored JSON by hash and length, its mutable fields as they are."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.items: OrderedDict[tuple[Any, ...], Markup] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Markup | None:
        with self.lock:
            html = self.items.get(key)
            if html is not None:
                self.items.move_to_end(key)
            return html

    def put(self, key: tuple[Any, ...], html: Markup) -> None:
        with self.lock:
            self.items[key] = html
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_CACHE = _TurnCache()


def _json_key(raw: str | bytes | None) -> tuple[int, int]:
    return (len(raw), hash(raw)) if raw else (0, 0)


def _raw_steps(row: Row) -> _Raw:
    """A packed row (0008) never holds media references: its steps as ``Row`` gives them."""
    if row.body is not None:
        return _Raw(row.link, _steps_of(row.input_steps), _steps_of(row.output_steps))
    return _Raw(row.link, _steps(row.input_steps_json), _steps(row.output_steps_json))


def _steps_of(value: Any) -> list[dict[str, Any]]:
    return [s for s in value if isinstance(s, dict)] if isinstance(value, list) else []


def rendered_turns(chain: Iterable[Row], tree: Tree, conversation_id: str, focus: str, now: datetime) -> list[Markup]:
    """The branch's turns, root first, as HTML: each turn's own input (not the history it
    re-sent) and its output, step by step (``turn.html``)."""
    out = []
    for i, row in enumerate(chain):
        forks = _forks(row, tree, i == 0)
        expiry = until(row.expires_at, now) if row.server_state == "live" else ""
        key = (conversation_id, row.id, i == 0, row.id == focus, row.link, row.model, row.agent, row.status,
               row.server_state, expiry, row.latency_ms, row.input_tokens, row.output_tokens, row.total_tokens,
               row.recorded_at, _json_key(row.input_steps_json), _json_key(row.output_steps_json), _json_key(row.body),
               row.input_text, row.output_text, row.error_json,
               tuple(forks))
        html = _CACHE.get(key)
        if html is None:
            inputs, outputs = turn_steps(_raw_steps(row), first=i == 0)
            view = TurnView(row, [step_view(s) for s in (*inputs, *outputs)], forks)
            html = Markup(fragment("turn.html", t=view, conversation_id=conversation_id, focus=focus, expiry=expiry))
            _CACHE.put(key, html)
        out.append(html)
    return out


def conversation_view(store: Store, interaction_id: str, branch: str | None = None) -> dict[str, Any]:
    """Everything the conversation page shows for ``interaction_id`` (any turn of it)."""
    from ..errors import NotFoundError

    row = store.get(interaction_id)
    tree = Tree(store.tree_nodes(row.conversation_id))
    target = row.id
    if branch:
        if branch not in tree.nodes:
            raise NotFoundError(f"no turn {branch!r} in conversation {row.conversation_id}")
        target = branch
    leaf = tree.leaf_for(target)
    chain = store.chain(leaf, raw=False)
    shown, more = branches(tree, leaf)
    focus = row.id if row.id != row.conversation_id or branch else ""
    return {
        "conversation_id": row.conversation_id,
        "summary": store.conversation(row.conversation_id),
        "focus": focus,
        "leaf": leaf,
        "turns": rendered_turns(chain, tree, row.conversation_id, focus, datetime.now(timezone.utc)),
        "branches": shown,
        "more_branches": more,
        "size": len(tree.nodes),
    }


def turns_after(store: Store, conversation_id: str, since: str) -> tuple[str, list[Markup]] | None:
    """For a live page showing the branch ending at ``since``: the newest leaf under it and
    the turns after ``since`` on the way there; None when ``since`` is not in the conversation."""
    tree = Tree(store.tree_nodes(conversation_id))
    if since not in tree.nodes:
        return None
    leaf = tree.leaf_for(since)
    if leaf == since:
        return leaf, []
    chain = store.chain(leaf, raw=False)
    ids = [r.id for r in chain]
    start = ids.index(since) + 1 if since in ids else 0
    return leaf, rendered_turns(chain, tree, conversation_id, "", datetime.now(timezone.utc))[start:]
