"""The core is sans-IO: importing it must not pull in an event loop or a socket layer."""

import subprocess
import sys

IO_MODULES = ("asyncio", "trio", "anyio", "socket", "selectors", "ssl")


def test_import_roomwire_loads_no_io_module() -> None:
    probe = (
        "import sys, roomwire, roomwire.frames, roomwire.events, roomwire.codes;"
        f"print(','.join(m for m in {IO_MODULES!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
