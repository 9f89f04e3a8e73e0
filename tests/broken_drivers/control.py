"""No bug: the broken drivers' machinery with nothing changed, which must do exactly what the memory driver does."""

from ._base import broken_harness

harness = broken_harness("control")
