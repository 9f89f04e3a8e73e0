"""Bug: the module loads its settings from what is pinned and the defaults only: NESTQ_MEMORY__* is ignored."""

from nestq_memory import MemoryConfig

from nestq_spec import load_settings

from ._base import Setup, broken_harness


class EnvBlind(Setup):
    def load(self) -> MemoryConfig:
        return load_settings(MemoryConfig, self.pinned, env={})  # the bug: an empty environment, always


harness = broken_harness("config_ignores_env", setup_class=EnvBlind)
