"""Attacks: each module turns a Behavior into AttackPrompt records.

Importing the static attack modules here fills `base.STATIC` (and `base.DECODERS`) before any caller can use them.
pair/autodan are left out: they need torch and a model, and `base.SEARCH` names them without importing them.
"""

from . import cipher, codeattack, completion, direct, harmful_prefix, jailbreak_template  # noqa: F401
