"""Users' own data: table files (CSV, JSON/JSONL, parquet) turned into prompt/response rows by templates.

``tables`` reads files, ``templates`` renders a row through Jinja, ``file_task`` is one task
definition (files, templates, filters, held-out split, scoring) used by ``stream=files`` and
``eval.files`` alike. (The ``forgetbench data-check`` command that shows them: :mod:`forgetbench.data_check`.)
"""
