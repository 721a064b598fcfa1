"""The platform's own pipeline stages: the champion gate, deploy (register, move aliases, roll
the model server out, smoke-test it) and rollback. They know no model: everything model-specific
comes from MLflow (the metric a run logged, the input example and signature a model was logged
with). CLI: `python -m trainyard.stages <stage>`.
"""
