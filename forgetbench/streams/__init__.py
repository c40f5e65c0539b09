"""Task streams: the ordered tasks a model is fine-tuned on, one after another."""
