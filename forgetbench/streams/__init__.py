"""Task streams: the ordered tasks a model is fine-tuned on, one after another.

Every stream's ``load(tokenizer)`` returns its :class:`~forgetbench.stream_records.StreamTask` list; the
model's tokenizer is handed over for streams that filter rows by token count (``files``).
"""
