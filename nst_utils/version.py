"""The package's version: a leaf module, so reading it imports nothing else."""

__version__ = "0.3.0"
