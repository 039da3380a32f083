"""This distribution's version, read from its installed metadata (pyproject.toml is the source)."""

from importlib.metadata import version

__version__ = version("roomwire-trio")
