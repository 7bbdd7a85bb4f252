"""The broker: catalog, routing to partitions, long polling, dead-letter moves."""

from conveyor.broker.broker import Broker, open

__all__ = ["Broker", "open"]
