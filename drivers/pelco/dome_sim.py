"""A simulated Pelco-D/P dome (several can share one bus), for tests, demos and checking a controller.

The dome decodes frames with the same sans-IO codec the appliance uses, moves pan/tilt/zoom with the
commanded speed over (injected) time, stores presets, answers position queries, and counts what it
threw away: garbage bytes, bad checksums, frames for other addresses. `PtyDomeBus` puts a bus of
domes on the far side of a real pseudo-terminal, so the appliance talks to it through the same
pyserial port it would open on a real ``/dev/ttyUSB0``.

Motion model (not any particular dome's): pan and tilt move `speed` degrees per second for speed
steps 1-63 and `turbo_deg_per_s` in turbo; pan wraps at 360, tilt stops at its limits (positive is
up, above the horizon); zoom runs 0 (wide) to 65535 (tele) in `zoom_travel_s`; focus and iris are
0..1 and take `lens_travel_s` end to end. Going to a preset or a position jumps there at once and
stops any motion, as domes stop a manual move when a preset is called.

To try `nvr ptz` or the appliance without a dome: ``python -m drivers.pelco.dome_sim --protocol
pelco-d --address 1`` prints the pty path to put in `ptz.ports[].url` and then the dome's state.
"""
from __future__ import annotations

import argparse
import os
import select
import threading
import tty
from dataclasses import dataclass, field, replace

from drivers.pelco.protocol import (STOP, ZOOM_MAX, Ack, Aux, Message, Move, PositionReport, Preset, ProtocolName, Query,
                           SetPosition, degrees_to_wire, encode, wire_to_degrees)
from drivers.pelco.stream import FrameDecoder
from base.clock import Clocks

@dataclass(frozen=True)
class DomePosition:
    """Where a dome points: degrees (pan 0 to <360, tilt positive up) and zoom 0-65535."""

    pan_deg: float
    tilt_deg: float
    zoom: float


@dataclass
class DomeState:
    """Everything a simulated dome remembers (positions as of `at_us`)."""

    position: DomePosition = DomePosition(0.0, 0.0, 0.0)
    focus: float = 0.5
    iris: float = 0.5
    motion: Move = STOP
    presets: dict[int, DomePosition] = field(default_factory=dict)
    aux_on: set[int] = field(default_factory=set)
    at_us: int = 0


class SimulatedDome:
    """One dome at one address; `handle` applies a message and returns the reply, if any."""

    def __init__(self, address: int, *, clocks: Clocks, tilt_limits_deg: tuple[float, float] = (-90.0, 10.0),
                 turbo_deg_per_s: float = 120.0, zoom_travel_s: float = 4.0, lens_travel_s: float = 4.0):
        self.address, self._clocks = address, clocks
        self._tilt_limits, self._turbo = tilt_limits_deg, turbo_deg_per_s
        self._zoom_per_s, self._lens_per_s = ZOOM_MAX / zoom_travel_s, 1.0 / lens_travel_s
        self._state = DomeState(at_us=clocks.monotonic_us())
        self._lock = threading.Lock()
        self.commands: list[Message] = []  # every message it accepted, in order
        self.unknown_presets = 0

    def state(self) -> DomeState:
        """A copy of the state, moved on to now."""
        with self._lock:
            self._advance()
            state = self._state
            return replace(state, presets=dict(state.presets), aux_on=set(state.aux_on))

    @property
    def position(self) -> DomePosition:
        return self.state().position

    def handle(self, message: Message) -> Message | None:
        """Apply one message addressed to this dome; the reply to send back, if any."""
        with self._lock:
            self._advance()
            self.commands.append(message)
            return self._apply(message)

    def _apply(self, message: Message) -> Message | None:
        state = self._state
        if isinstance(message, Move):
            state.motion = message
        elif isinstance(message, Preset):
            self._preset(message)
        elif isinstance(message, Aux):
            (state.aux_on.add if message.on else state.aux_on.discard)(message.number)
        elif isinstance(message, SetPosition):
            self._set_position(message)
        elif isinstance(message, Query):
            return PositionReport(message.axis, self._wire_position(message.axis))
        return None

    def _preset(self, preset: Preset) -> None:
        state = self._state
        if preset.action == "set":
            state.presets[preset.number] = state.position
        elif preset.action == "clear":
            state.presets.pop(preset.number, None)
        elif preset.number in state.presets:
            state.position, state.motion = state.presets[preset.number], STOP
        else:
            self.unknown_presets += 1

    def _set_position(self, message: SetPosition) -> None:
        position = self._state.position
        if message.axis == "pan":
            position = replace(position, pan_deg=wire_to_degrees(message.value))
        elif message.axis == "tilt":
            position = replace(position, tilt_deg=self._clamp_tilt(wire_to_degrees(message.value, signed=True)))
        else:
            position = replace(position, zoom=float(message.value))
        self._state.position, self._state.motion = position, STOP

    def _wire_position(self, axis: str) -> int:
        position = self._state.position
        if axis == "zoom":
            return round(position.zoom)
        return degrees_to_wire(position.pan_deg if axis == "pan" else position.tilt_deg)

    def _advance(self) -> None:
        """Integrate the current motion from the last update to now."""
        now = self._clocks.monotonic_us()
        state = self._state
        elapsed_s, state.at_us = max(now - state.at_us, 0) / 1e6, now
        motion = state.motion
        if motion.is_stop or elapsed_s == 0:
            return
        pan_rate = self._turbo if motion.turbo else float(motion.pan_speed)
        position = state.position
        state.position = DomePosition(
            pan_deg=(position.pan_deg + motion.pan * pan_rate * elapsed_s) % 360.0,
            tilt_deg=self._clamp_tilt(position.tilt_deg + motion.tilt * motion.tilt_speed * elapsed_s),
            zoom=min(max(position.zoom + motion.zoom * self._zoom_per_s * elapsed_s, 0.0), float(ZOOM_MAX)))
        state.focus = min(max(state.focus + motion.focus * self._lens_per_s * elapsed_s, 0.0), 1.0)
        state.iris = min(max(state.iris + motion.iris * self._lens_per_s * elapsed_s, 0.0), 1.0)

    def _clamp_tilt(self, tilt_deg: float) -> float:
        low, high = self._tilt_limits
        return min(max(tilt_deg, low), high)


class SimulatedDomeBus:
    """Domes sharing one RS-485 line: bytes in, replies out (sans-IO; `PtyDomeBus` does the I/O)."""

    def __init__(self, protocol: ProtocolName, domes: list[SimulatedDome], *, send_acks: bool = False):
        self.protocol = protocol
        self.domes = {dome.address: dome for dome in domes}
        self.decoder = FrameDecoder(protocol, role="dome")
        self._send_acks = send_acks and protocol == "pelco-d"
        self.other_address_frames = 0
        self.received: list[bytes] = []  # every well-formed frame, as it came off the line

    def feed(self, data: bytes) -> bytes:
        """Bytes received from the line -> bytes the domes send back."""
        return self._replies(self.decoder.feed(data))

    def idle(self) -> bytes:
        """The line went quiet: drop any partial frame (as a dome's inter-byte timeout does)."""
        return self._replies(self.decoder.idle())

    def _replies(self, frames) -> bytes:
        out = bytearray()
        for frame in frames:
            self.received.append(frame.raw)
            dome = self.domes.get(frame.address)
            if dome is None or isinstance(frame.message, (PositionReport, Ack)):
                self.other_address_frames += 1
                continue
            reply = dome.handle(frame.message)
            if reply is None and self._send_acks:
                reply = Ack(0)
            if reply is not None:
                out += encode(self.protocol, frame.address, reply)
        return bytes(out)

    def statistics(self) -> dict:
        return {**self.decoder.statistics(), "other_address_frames": self.other_address_frames}


class PtyDomeBus:
    """A SimulatedDomeBus on the master side of a real pseudo-terminal; open `path` like a serial port.

    The bus keeps its own handle on the terminal side open, so the master never sees a hang-up when
    a controller closes and reopens the port (as `nvr ptz` does for each command).
    """

    def __init__(self, bus: SimulatedDomeBus, *, idle_s: float = 0.02):
        self.bus, self._idle_s = bus, idle_s
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation before a controller configures it
        self.path = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"pelco-sim {self.path}", daemon=True)
        self._thread.start()

    def inject(self, data: bytes) -> None:
        """Put bytes on the line towards the domes, as noise or another controller would."""
        os.write(self._slave, data)

    def inject_to_controller(self, data: bytes) -> None:
        """Put bytes on the line towards the controller, as a noisy dome would."""
        os.write(self._master, data)

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._master, self._stop_r], [], [], self._idle_s)
            if self._stop_r in ready:
                return
            if not ready:
                self._write(self.bus.idle())
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:  # EIO: no terminal side open (cannot happen while we hold one)
                continue
            self._write(self.bus.feed(data))

    def _write(self, data: bytes) -> None:
        if data:
            os.write(self._master, data)

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            os.close(fd)

    def __enter__(self) -> PtyDomeBus:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    """Run simulated domes on a pty until Ctrl-C, printing each accepted command and the state."""
    from base.clock import RealClocks

    parser = argparse.ArgumentParser(prog="python -m drivers.pelco.dome_sim", description=main.__doc__)
    parser.add_argument("--protocol", choices=("pelco-d", "pelco-p"), default="pelco-d")
    parser.add_argument("--address", type=int, action="append", help="dome address (repeat for several)")
    parser.add_argument("--acks", action="store_true", help="send Pelco-D general responses")
    args = parser.parse_args(argv)
    domes = [SimulatedDome(address, clocks=RealClocks()) for address in args.address or [1]]
    with PtyDomeBus(SimulatedDomeBus(args.protocol, domes, send_acks=args.acks)) as pty:
        print(f"{args.protocol} dome(s) at {', '.join(str(d.address) for d in domes)} on {pty.path}", flush=True)
        seen = dict.fromkeys(args.address or [1], 0)
        try:
            while True:
                select.select([], [], [], 0.2)
                for dome in domes:
                    for message in dome.commands[seen[dome.address]:]:
                        seen[dome.address] += 1
                        state = dome.state()
                        print(f"{dome.address}: {message} -> pan {state.position.pan_deg:.1f} tilt "
                              f"{state.position.tilt_deg:.1f} zoom {state.position.zoom:.0f}", flush=True)
        except KeyboardInterrupt:
            print(f"line statistics: {pty.bus.statistics()}")


if __name__ == "__main__":
    main()
