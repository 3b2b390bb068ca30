"""Evaluation: batched generation, resumable runs, metrics, report."""
