"""Records (SafetyTriple, Conversation, Behavior), validated readers, bundled sources, DeRTa example builders."""

from .records import Behavior, Conversation, RefusalLabel, SafetyTriple
from .readers import load_behaviors, load_conversations, load_triples, read_rows

__all__ = ["Behavior", "Conversation", "RefusalLabel", "SafetyTriple", "load_behaviors", "load_conversations",
           "load_triples", "read_rows"]
