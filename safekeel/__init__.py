"""safekeel: safety alignment for causal language models.

Pipeline: data -> train (DeRTa) -> units (SSAH) -> attacks -> judges -> eval -> report.
"""

__version__ = "0.1.0"
