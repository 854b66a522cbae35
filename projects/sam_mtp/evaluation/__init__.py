"""Evaluations of pretrained encoders that need no fine-tuning: the frozen-feature linear probe."""
