"""Records (SafetyTriple, Conversation, Behavior), validated readers, bundled sources, DeRTa example builders."""

from .readers import load_behaviors, load_conversations, load_triples, read_rows
from .records import Behavior, Conversation, RefusalLabel, SafetyTriple

__all__ = ["Behavior", "Conversation", "RefusalLabel", "SafetyTriple", "load_behaviors", "load_conversations",
           "load_triples", "read_rows"]
