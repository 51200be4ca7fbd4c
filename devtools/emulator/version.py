"""The emulator's version (its own module so it imports even where ``emulator`` resolves as a namespace)."""

__version__ = "0.1.0"
