"""trainyard: a Helm-packaged ML training platform and its training pipeline."""

__version__ = "0.4.0"
