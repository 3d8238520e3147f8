"""PTZ test helpers: simulated Pelco domes behind a real pty, and a config that points at them."""
from __future__ import annotations

import textwrap

from appliance.config.model import Config, parse_config
from drivers.pelco.dome_sim import PtyDomeBus, SimulatedDome, SimulatedDomeBus
from base.clock import SimulatedClocks
from support.waiting import wait_for


class DomeRig:
    """Domes at `addresses` on one pty, moving by their own simulated clock."""

    def __init__(self, protocol: str, addresses=(1,), *, send_acks: bool = False):
        self.clocks = SimulatedClocks()
        self.domes = {address: SimulatedDome(address, clocks=self.clocks) for address in addresses}
        self.bus = SimulatedDomeBus(protocol, list(self.domes.values()), send_acks=send_acks)
        self.pty = PtyDomeBus(self.bus)
        self.path = self.pty.path

    def dome(self, address: int = 1) -> SimulatedDome:
        return self.domes[address]

    def wait_commands(self, count: int, address: int = 1) -> None:
        """Wait until the dome at `address` has accepted `count` commands in all."""
        wait_for(lambda: len(self.domes[address].commands) >= count, what=f"{count} command(s) at {address}")

    def wait_frames(self, count: int) -> None:
        wait_for(lambda: len(self.bus.received) >= count, what=f"{count} frame(s) on the line")

    def close(self) -> None:
        self.pty.close()


def ptz_config(path: str, protocol: str, *, baud: int = 9600, channels=((1, 1),), extra_port: str = "",
               tours: str = "", query_timeout_s: float = 0.5) -> Config:
    """A config with one bus on `path` and a disabled test-pattern channel per (channel, address)."""
    channel_text = "".join(textwrap.dedent(f"""\
        - id: {channel}
          enabled: false
          source: {{type: test-pattern}}
          ptz:
            port: bus1
            address: {address}
        """) + (textwrap.indent(tours, "    ") if channel == channels[0][0] else "")
        for channel, address in channels)
    text = (f"channels:\n{textwrap.indent(channel_text, '  ')}"
            f"ptz:\n  ports:\n    - id: bus1\n      url: {path}\n      protocol: {protocol}\n"
            f"      baud: {baud}\n      query_timeout_s: {query_timeout_s}\n{extra_port}")
    return parse_config(text, source="ptz-test.yaml")
