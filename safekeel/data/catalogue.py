"""Every named data set, loaded by name: what `safekeel data sources` counts.

It sits above `helpful` because the conversation sets are drawn after quarantine against the split registry, and
the registry reads the raw sets in `bundled`; a catalogue inside `bundled` made the three import one another.
"""

from __future__ import annotations

from ..sources import get_source
from .bundled import LOADERS as RAW_LOADERS
from .eval_sets import OWN_SETS
from .helpful import howto_conversations, qa_conversations

LOADERS = {**RAW_LOADERS, "helpful-qa": qa_conversations, "howto-qa": howto_conversations}


def load(name: str) -> list:
    if name not in LOADERS:
        get_source(name)  # raises a clear error for unknown names
        raise ValueError(f"source '{name}' is a model, not a data set")
    return LOADERS[name]()


def count(name: str) -> int | None:
    src_kind = None if name in OWN_SETS else get_source(name).kind
    if src_kind == "model":
        return None
    return len(load(name))
