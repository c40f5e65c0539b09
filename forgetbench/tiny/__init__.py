"""The offline default: a generated world (world.py, stream_tasks.py, files.py), its word tokenizer,
a base model pretrained on it (model.py) and its general-ability suite (suite.py)."""
