"""An example unetgan-bench plugin (see ``methods``)."""

__version__ = "0.1.0"
