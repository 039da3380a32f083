"""This distribution's version, read from its installed metadata (pyproject.toml is the source).

``roomwire_anyio/__init__.py`` re-exports it as ``roomwire_anyio.__version__``.
"""

from importlib.metadata import version

__version__ = version("roomwire-anyio")
