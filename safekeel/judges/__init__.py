"""Judges: keyword refusal, learned refusal classifier, LLM rubric, LlamaGuard."""
