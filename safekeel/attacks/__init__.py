"""Attacks: each module turns a Behavior into AttackPrompt records."""
