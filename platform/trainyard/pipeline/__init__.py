"""Building blocks of the training DAG. Light to import: the DAG file is parsed often.

Nothing here imports torch, MLflow or the Kubernetes client at module level.
"""
