"""Training: DeRTa collator, a Trainer subclass that logs MLE and RTO losses, LoRA / full FT, resume, `safekeel train`."""
