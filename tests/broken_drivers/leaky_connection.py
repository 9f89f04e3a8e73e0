"""Bug: the connection opens a socket to its storage and never closes it, not even when the app shuts down."""

import socket

from nestq_memory import MemoryBroker, MemoryConfig, MemoryConnection

from ._base import broken_harness


class Leaky(MemoryConnection):
    def __init__(self, broker: MemoryBroker, config: MemoryConfig) -> None:
        super().__init__(broker, config)
        self.sockets = socket.socketpair()  # stands for a real driver's connection to its server

    async def aclose(self) -> None:
        self.closed = True  # the bug: the sockets stay open


harness = broken_harness("leaky_connection", connection=Leaky)
