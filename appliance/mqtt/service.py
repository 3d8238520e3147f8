"""The MQTT part of the running appliance: connection, publisher, discovery and commands, started and stopped together.

Started after the alarm I/O (it listens to the rule engine) and stopped before it. `start` never waits
for the broker: an unreachable or refusing broker shows in `statistics()["last_error"]` (the health
page) while recording and alarms go on.
"""
from __future__ import annotations

import json
import logging

from base.clock import Clocks

from appliance.config.model import Config
from appliance.mqtt import MqttBox
from appliance.mqtt.client import Message, MqttClient
from appliance.mqtt.commands import Command, CommandRunner
from appliance.mqtt.discovery import discovery_configs, node_id, own_configs_filter, stale
from appliance.mqtt.publish import Publisher
from appliance.mqtt.topics import Topics, host_name
from appliance.version import appliance_version

log = logging.getLogger("nvr.mqtt")


def client_id_of(config: Config) -> str:
    return config.mqtt.client_id or f"nvr-{host_name()}"


def topics_of(config: Config) -> Topics:
    return Topics(config.mqtt.topic_prefix or f"nvr/{host_name()}")


class MqttService:
    """Everything MQTT for one appliance (`box`: what it sees of the appliance)."""

    def __init__(self, box: MqttBox, *, clocks: Clocks):
        config = box.config
        self._box, self._config, self._clocks = box, config, clocks
        self.topics = topics_of(config)
        self.node = node_id(client_id_of(config))
        self.publisher: Publisher | None = None
        self.commands = CommandRunner(box, prefix=self.topics.prefix, allowed=list(config.mqtt.commands),
                                      manual_record_s=config.mqtt.manual_record_s, after=self._after_command)
        discovery_filter = own_configs_filter(config.mqtt.discovery_prefix, self.node)
        subscriptions = [*(self.topics.command_filters() if config.mqtt.commands else []),
                         *([discovery_filter] if config.mqtt.discovery else [])]
        self.client = MqttClient(url=config.mqtt.url, client_id=client_id_of(config),
                                 availability_topic=self.topics.availability, clocks=clocks, tls=config.mqtt.tls,
                                 keepalive_s=config.mqtt.keepalive_s, reconnect_max_s=config.mqtt.reconnect_max_s,
                                 outbox_max=config.mqtt.outbox_max, on_connected=self._announcement,
                                 subscriptions=subscriptions, on_message=self._received)
        self._discovery: dict[str, dict] = {}
        self.removed = 0
        self._unsubscribe = None

    def start(self) -> None:
        self._discovery = self.discovery()
        self.publisher = Publisher(self._box, topics=self.topics, publish=self.client.publish, clocks=self._clocks)
        self.publisher.start()
        self._unsubscribe = self._box.subscribe_alarms(self.publisher)
        self.commands.start()
        self.client.start()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.commands.stop()
        if self.publisher is not None:
            self.publisher.stop()
        self.client.stop()

    def discovery(self) -> dict[str, dict]:
        """Config topic -> Home Assistant discovery payload, as published on each connection."""
        return discovery_configs(self._config, self.topics, node=self.node, sw_version=appliance_version(),
                                 box_name=f"NVR {self.topics.prefix.rsplit('/', 1)[-1]}",
                                 ptz_channels=self._box.ptz_channels())

    def _announcement(self) -> list[Message]:
        """On each connection, before queued events: discovery configs, then every retained state."""
        configs = [Message(topic, json.dumps(payload, separators=(",", ":")).encode(), retain=True)
                   for topic, payload in self._discovery.items()]
        return configs + (self.publisher.retained_states() if self.publisher is not None else [])

    def _received(self, topic: str, payload: bytes) -> None:
        """paho's thread: a command, or one of our own retained discovery configs (sweep the stale ones)."""
        if topic.startswith(self._config.mqtt.discovery_prefix + "/"):
            if stale(topic, payload, current=self._discovery, discovery_prefix=self._config.mqtt.discovery_prefix,
                     node=self.node):
                self.removed += 1
                log.info("MQTT: removing %s from Home Assistant (no longer configured)", topic)
                self.client.publish(topic, b"", retain=True)
            return
        self.commands.received(topic, payload)

    def _after_command(self, command: Command) -> None:
        if command.kind in ("output", "arm") and self.publisher is not None:
            self.publisher.refresh()

    def statistics(self) -> dict:
        return {**self.client.statistics(), "topic_prefix": self.topics.prefix, "discovery_entities": len(self._discovery),
                "discovery_removed": self.removed, "commands": self.commands.statistics(),
                "publisher": self.publisher.statistics() if self.publisher is not None else None}
