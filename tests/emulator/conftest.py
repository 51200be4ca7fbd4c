"""Make the emulator fixtures available to these tests.

Non-root conftest files may not set ``pytest_plugins``, so the fixtures are re-exported here.
Once the root ``conftest.py`` loads ``emulator.pytest_plugin`` the module is already imported
and this becomes a no-op, so the fixtures are never defined twice.
"""

import sys

if "emulator.pytest_plugin" not in sys.modules:
    from emulator.pytest_plugin import *  # noqa: F403
