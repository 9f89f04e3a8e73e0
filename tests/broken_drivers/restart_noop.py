"""Bug: the Redis harness's restart_storage returns at once without restarting anything (DUR-005 must notice)."""

from nestq_redis.harness import RedisHarness


class NoRestart(RedisHarness):
    """The Redis driver's harness, except that a storage restart does nothing."""

    async def restart_storage(self) -> None:
        """Return without restarting: the storage's run id stays the same."""


harness = NoRestart()
