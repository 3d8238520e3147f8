"""One RS-485 bus of Pelco domes: a worker thread that owns the port and sends frames one at a time.

Every frame for the bus goes through one queue, so frames to different domes never interleave on
the wire, and consecutive frames are spaced by their own transmission time plus an inter-frame gap
(default four character times at the baud rate; a dome at 2400 baud needs ~29 ms per 7-byte frame).
A continuous move that is still queued is replaced by a newer move or stop to the same dome, so a
joystick held down never builds up a backlog on a slow line. Position queries wait for the dome's
answer up to a timeout; everything else that arrives (general responses, our own echo on adapters
that hear themselves, garbage) is read, decoded and counted.

Tours (a list of presets with dwell times) run here too, timed by the injected clock, so a tour
keeps going while the caller is busy elsewhere. When the bus stops, every dome it had set moving is
sent Stop, so a dome does not keep turning after the appliance shuts down.

Exceptions::

    PelcoBusError (RuntimeError)
     +-- BusDown (also ConnectionError)    the port is not open (unplugged adapter, stopped bus)
     +-- QueryTimeout (also TimeoutError)  a dome did not answer a position query in time
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from drivers.pelco.protocol import STOP, Ack, Axis, Frame, Message, Move, PositionReport, Preset, ProtocolName, Query, encode
from drivers.pelco.stream import FrameDecoder
from base.clock import Clocks
from hal.serial_port import SerialPort, SerialPortError, character_time_s

log = logging.getLogger("nvr.ptz")

DEFAULT_GAP_CHARACTERS = 4
IDLE_POLL_S = 0.05


class PelcoBusError(RuntimeError):
    """Base of the bus's errors."""


class BusDown(PelcoBusError, ConnectionError):
    """The bus's port is not open."""


class QueryTimeout(PelcoBusError, TimeoutError):
    """A dome did not answer a position query in time."""


@dataclass(frozen=True)
class TourStep:
    """Go to `preset`, then stay `dwell_s` seconds."""

    preset: int
    dwell_s: float


@dataclass
class _Tour:
    name: str
    steps: tuple[TourStep, ...]
    next_step: int = 0
    next_at_us: int = 0


@dataclass
class _Request:
    address: int
    message: Message
    frame: bytes
    future: Future
    query_timeout_s: float | None = None


class PelcoBus:
    """A worker that owns one serial port and the domes on it.

    `open_port` opens the port (raising SerialPortError); it is retried with backoff while it
    fails, and `on_port_state(ok, error_text)` is told each time the port opens or fails.
    """

    def __init__(self, *, open_port: Callable[[], SerialPort], protocol: ProtocolName, baud: int, clocks: Clocks,
                 gap_s: float | None = None, query_timeout_s: float = 0.5, name: str = "ptz",
                 on_port_state: Callable[[bool, str | None], None] | None = None, retry_max_s: float = 30.0):
        self.protocol, self.baud, self.name = protocol, baud, name
        self._open_port, self._clocks, self._on_port_state = open_port, clocks, on_port_state
        self.gap_s = DEFAULT_GAP_CHARACTERS * character_time_s(baud) if gap_s is None else gap_s
        self.query_timeout_s, self._retry_max_s = query_timeout_s, retry_max_s
        self._decoder = FrameDecoder(protocol, role="host")
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._tours: dict[int, _Tour] = {}
        self._moving: set[int] = set()
        self._port: SerialPort | None = None
        self._stopping = False
        self._halt_domes = True
        self._thread: threading.Thread | None = None
        self._next_send_us = 0
        self._last_rx_s = 0.0
        self._quiet_s = max(0.01, 5 * character_time_s(baud))  # line idle long enough to end a frame
        self._stats = dict.fromkeys(("frames_sent", "bytes_sent", "queries", "timeouts", "acks", "reports",
                                     "echoes", "superseded", "port_errors", "tour_steps", "worker_errors"), 0)
        self.last_error: str | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, *, require_port: bool = False) -> None:
        """Open the port and start the worker. With `require_port`, a port that cannot be opened raises
        SerialPortError (for one-shot commands); otherwise the worker keeps retrying in the background."""
        try:
            self._set_port(self._open_port())
        except SerialPortError as exc:
            if require_port:
                raise
            self._port_failed(exc)
        self._thread = threading.Thread(target=self._run, name=f"ptz {self.name}", daemon=True)
        self._thread.start()

    def stop(self, *, halt_domes: bool = True) -> None:
        """Close the port, first sending Stop to every dome this bus set moving (unless `halt_domes` is
        false, as for a one-shot command whose move must outlive it). Queued requests fail."""
        with self._cond:
            self._halt_domes = halt_domes
            self._stopping = True
            self._tours.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- requests --------------------------------------------------------------------------------

    def send(self, address: int, message: Message) -> Future:
        """Queue `message` for the dome at `address`; the future resolves once it is written.

        A queued Move to the same dome not yet sent is replaced (its future resolves with
        'superseded'). Raises BusDown if the port is not open.
        """
        request = _Request(address, message, encode(self.protocol, address, message), Future())
        with self._cond:
            self._check_up()
            if isinstance(message, Move) and self._replace_queued_move(request):
                return request.future
            self._queue.append(request)
            self._cond.notify_all()
        return request.future

    def query(self, address: int, axis: Axis, *, timeout_s: float | None = None) -> int:
        """Ask the dome at `address` for its `axis` position and wait for the answer (wire units)."""
        request = _Request(address, Query(axis), encode(self.protocol, address, Query(axis)), Future(),
                           query_timeout_s=self.query_timeout_s if timeout_s is None else timeout_s)
        with self._cond:
            self._check_up()
            self._queue.append(request)
            self._cond.notify_all()
        return request.future.result(timeout=request.query_timeout_s + 30)  # the worker times out first

    def start_tour(self, address: int, name: str, steps: list[TourStep]) -> None:
        """Visit `steps` in turn, forever, starting now; replaces a tour already running on that dome."""
        if not steps:
            raise ValueError(f"tour {name!r} has no steps")
        with self._cond:
            self._check_up()
            self._tours[address] = _Tour(name, tuple(steps), next_at_us=self._clocks.monotonic_us())
            self._cond.notify_all()

    def stop_tour(self, address: int) -> str | None:
        """Stop the tour on that dome (the dome stays where it is); the tour's name, or None if none ran."""
        with self._cond:
            tour = self._tours.pop(address, None)
        return tour.name if tour else None

    def tour_of(self, address: int) -> str | None:
        """Name of the tour running on that dome, if any."""
        with self._cond:
            tour = self._tours.get(address)
        return tour.name if tour else None

    def statistics(self) -> dict:
        with self._cond:
            return {**self._stats, **{f"rx_{key}": value for key, value in self._decoder.statistics().items()},
                    "open": self._port is not None, "last_error": self.last_error, "queued": len(self._queue),
                    "tours": {address: tour.name for address, tour in self._tours.items()},
                    "baud": self.baud, "protocol": self.protocol, "gap_ms": round(self.gap_s * 1000, 2)}

    def _check_up(self) -> None:
        if self._stopping:
            raise BusDown(f"PTZ bus {self.name} is stopped")
        if self._port is None:
            raise BusDown(f"PTZ bus {self.name} is down: {self.last_error or 'port not open'}")

    def _replace_queued_move(self, request: _Request) -> bool:
        """Put `request` in the place of the dome's last queued request if that is a move too."""
        for position in range(len(self._queue) - 1, -1, -1):
            queued = self._queue[position]
            if queued.address != request.address:
                continue
            if not isinstance(queued.message, Move):
                return False  # a preset call in between must still come before the new move
            self._queue[position] = request
            queued.future.set_result("superseded")
            self._stats["superseded"] += 1
            return True
        return False

    # --- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        retry_s = 0.5
        while True:
            with self._cond:
                if self._stopping:
                    break
            if self._port is None:
                self._wait(retry_s)  # an adapter being plugged in or a driver loading needs a moment
                if not self._reopen():
                    retry_s = min(retry_s * 2, self._retry_max_s)
                    continue
                retry_s = 0.5
            try:
                self._step()
            except SerialPortError as exc:
                self._port_failed(exc)
            except Exception:  # noqa: BLE001 - whatever a dome sends, the worker serves the next command
                with self._cond:
                    self._stats["worker_errors"] += 1
                log.exception("PTZ bus %s: handling the line failed; the worker goes on", self.name)
        self._shutdown()

    def _step(self) -> None:
        self._due_tour_steps()
        request = self._next_request()
        if request is None:
            self._receive(timeout_s=0)
        else:
            self._execute(request)

    def _wait(self, seconds: float) -> None:
        with self._cond:
            if not self._stopping:
                self._cond.wait(seconds)

    def _next_request(self) -> _Request | None:
        with self._cond:
            if not self._queue and not self._stopping:
                self._cond.wait(self._idle_wait_s())
            return self._queue.pop(0) if self._queue and not self._stopping else None

    def _idle_wait_s(self) -> float:
        """Until the next tour step is due (by the injected clock), at most IDLE_POLL_S of real time."""
        if not self._tours:
            return IDLE_POLL_S
        due_us = min(tour.next_at_us for tour in self._tours.values()) - self._clocks.monotonic_us()
        return min(max(due_us / 1e6, 0.0), IDLE_POLL_S)

    def _due_tour_steps(self) -> None:
        now = self._clocks.monotonic_us()
        with self._cond:
            due = [(address, tour) for address, tour in self._tours.items() if tour.next_at_us <= now]
            for address, tour in due:
                step = tour.steps[tour.next_step]
                tour.next_at_us = now + round(step.dwell_s * 1e6)
                tour.next_step = (tour.next_step + 1) % len(tour.steps)
                message = Preset("go", step.preset)
                self._queue.append(_Request(address, message, encode(self.protocol, address, message), Future()))
                self._stats["tour_steps"] += 1

    def _execute(self, request: _Request) -> None:
        self._pace()
        try:
            started_us = self._clocks.monotonic_us()
            self._port.write(request.frame)
            self._sent(request, started_us)
            if request.query_timeout_s is None:
                request.future.set_result("sent")
            else:
                self._await_report(request)
        except SerialPortError as exc:
            if not request.future.done():
                request.future.set_exception(BusDown(f"PTZ bus {self.name}: {exc}"))
            raise
        except Exception as exc:
            if not request.future.done():  # the caller hears of it now, not after its timeout
                request.future.set_exception(PelcoBusError(f"PTZ bus {self.name}: {exc}"))
            raise

    def _pace(self) -> None:
        """Wait until the previous frame has left the wire and the line has been quiet for the gap."""
        wait_us = self._next_send_us - self._clocks.monotonic_us()
        if wait_us > 0:
            self._clocks.sleep(wait_us / 1e6)

    def _sent(self, request: _Request, started_us: int) -> None:
        # A UART's write returns once the bytes are sent (tcdrain), a pty's or a socket's at once:
        # the line is free after whichever is later, the write's return or the frame's wire time.
        wire_us = round(len(request.frame) * character_time_s(self.baud) * 1e6)
        free_us = max(self._clocks.monotonic_us(), started_us + wire_us)
        self._next_send_us = free_us + round(self.gap_s * 1e6)
        with self._cond:
            self._stats["frames_sent"] += 1
            self._stats["bytes_sent"] += len(request.frame)
        if isinstance(request.message, Move):
            (self._moving.discard if request.message.is_stop else self._moving.add)(request.address)
        elif isinstance(request.message, Preset) and request.message.action == "go":
            self._moving.discard(request.address)

    def _await_report(self, request: _Request) -> None:
        axis = request.message.axis
        with self._cond:
            self._stats["queries"] += 1
        # On the injected clock like everything else here: a test on simulated time times a query out by
        # moving the clock; the serial read below is only ever as long as what is left of it.
        deadline_us = self._clocks.monotonic_us() + round(request.query_timeout_s * 1e6)
        while (remaining := (deadline_us - self._clocks.monotonic_us()) / 1e6) > 0:
            for frame in self._feed(self._port.read(256, timeout_s=remaining)):
                message = frame.message
                if isinstance(message, PositionReport) and frame.address == request.address and message.axis == axis:
                    request.future.set_result(message.value)
                    return
        self._count(self._decoder.idle())
        with self._cond:
            self._stats["timeouts"] += 1
        request.future.set_exception(QueryTimeout(
            f"the dome at address {request.address} on {self.name} did not answer a {axis} query within "
            f"{request.query_timeout_s:g} s (does it support Pelco position queries?)"))

    def _receive(self, *, timeout_s: float) -> None:
        data = self._port.read(4096, timeout_s=timeout_s)
        if data:
            self._feed(data)
        elif self._decoder.pending_bytes and self._clocks.monotonic_us() / 1e6 - self._last_rx_s >= self._quiet_s:
            self._count(self._decoder.idle())  # a frame cut short: its rest is not coming

    def _feed(self, data: bytes) -> list[Frame]:
        self._last_rx_s = self._clocks.monotonic_us() / 1e6
        frames = self._decoder.feed(data)
        self._count(frames)
        return frames

    def _count(self, frames: list[Frame]) -> None:
        with self._cond:
            for frame in frames:
                kind = ("acks" if isinstance(frame.message, Ack) else
                        "reports" if isinstance(frame.message, PositionReport) else "echoes")
                self._stats[kind] += 1

    # --- the port --------------------------------------------------------------------------------

    def _reopen(self) -> bool:
        with self._cond:
            if self._stopping:
                return False
        try:
            port = self._open_port()
        except SerialPortError as exc:
            self._port_failed(exc, quiet=True)
            return False
        self._set_port(port)
        return True

    def _set_port(self, port: SerialPort) -> None:
        with self._cond:
            self._port, self.last_error = port, None
        log.info("PTZ bus %s: open at %d baud (%s)", self.name, self.baud, self.protocol)
        if self._on_port_state:
            self._on_port_state(True, None)

    def _port_failed(self, exc: BaseException, *, quiet: bool = False) -> None:
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        with self._cond:
            port, self._port = self._port, None
            repeated = quiet and text == self.last_error
            self.last_error = text
            self._stats["port_errors"] += 0 if repeated else 1
            failed, self._queue = self._queue, []
        for request in failed:
            request.future.set_exception(BusDown(f"PTZ bus {self.name}: {text}"))
        if port is not None:
            _close_quietly(port)
        if not repeated:
            log.error("PTZ bus %s: %s", self.name, text)
            if self._on_port_state:
                self._on_port_state(False, text)

    def _shutdown(self) -> None:
        with self._cond:
            pending, self._queue = self._queue, []
        for request in pending:
            request.future.set_exception(BusDown(f"PTZ bus {self.name} is stopped"))
        if self._port is None:
            return
        for address in sorted(self._moving) if self._halt_domes else ():
            try:
                self._execute(_Request(address, STOP, encode(self.protocol, address, STOP), Future()))
            except SerialPortError:
                break
        _close_quietly(self._port)
        self._port = None


def _close_quietly(port: SerialPort) -> None:
    try:
        port.close()
    except Exception:  # closing a port that already failed must not hide the first error
        log.debug("closing the PTZ port failed", exc_info=True)
