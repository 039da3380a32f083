"""The ``roomwire`` command, driven in subprocesses against a real ``roomwire serve``."""
