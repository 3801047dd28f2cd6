"""The application layer: the service object and the workflows that combine the packages
below it (reports, article state changes, tuning, doctor, evaluation, duplicates).

Layers, one way (checked by `lint-imports`, see setup.cfg):
scripts (the CLI) -> web -> kb.app -> search (the query path) -> indexer -> kb (domain,
content, store).
"""
