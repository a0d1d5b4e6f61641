"""The version, in one place: setup reads it, and modules import it from here, never from the package root."""

__version__ = "0.1.0"
