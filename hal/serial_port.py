"""Serial ports by URL (pyserial's `serial_for_url`), with the kernel's RS-485 mode as an option.

URLs are what pyserial takes: a device path (``/dev/ttyUSB0``, ``/dev/ttyAMA0``, a pty's
``/dev/pts/N``), ``loop://``, ``socket://host:port`` (a serial-to-Ethernet converter in raw TCP
mode) or ``rfc2217://host:port``. Device paths are opened with an exclusive lock, so two processes
never talk on one bus at once; the second gets `PortBusy`.

RS-485 is half duplex: something must switch the line driver to transmit. USB RS-485 adapters do it
in hardware (use ``rs485: false``). A UART wired to a transceiver whose DE/RE pin hangs off RTS
needs the kernel's RS-485 mode (``TIOCSRS485``), which only some UART drivers have; a pty and most
USB adapters have not, and then opening fails with `Rs485Unsupported` rather than sending into a
driver that is never enabled.

`SimulatedSerialLine` joins two in-memory ports back to back for tests that need no kernel at all.

Exceptions::

    SerialPortError (OSError)      the port cannot be opened or used
     +-- PortBusy                  another process holds the port (exclusive lock)
     +-- PortNotFound              no such device (also FileNotFoundError)
     +-- Rs485Unsupported          the driver has no kernel RS-485 mode
"""
from __future__ import annotations

import errno
import math
import threading
from dataclasses import dataclass
from typing import Protocol

BITS_PER_CHARACTER = 10  # 8N1: start bit, 8 data bits, stop bit
READ_POLL_S = 0.01


class SerialPortError(OSError):
    """The port cannot be opened or used."""


class PortBusy(SerialPortError):
    """Another process holds the port's exclusive lock."""


class PortNotFound(SerialPortError, FileNotFoundError):
    """No such serial device."""


class Rs485Unsupported(SerialPortError):
    """The port's kernel driver has no RS-485 mode (TIOCSRS485)."""


def character_time_s(baud: int) -> float:
    """Seconds one 8N1 character takes on the wire at `baud`."""
    return BITS_PER_CHARACTER / baud


class SerialPort(Protocol):
    """A byte pipe to a bus; one owner at a time."""

    url: str
    baud: int

    def write(self, data: bytes) -> None:
        """Queue `data` for sending and wait until the driver has taken it (not until it is on the wire)."""

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Up to `max_bytes` bytes: returns as soon as any arrived, or b'' after `timeout_s`."""

    def close(self) -> None:
        """Release the port (and its lock). Idempotent."""


@dataclass(frozen=True)
class Rs485Options:
    """Kernel RS-485 settings: RTS level while sending / receiving, and turn-around delays."""

    rts_level_for_tx: bool = True
    rts_level_for_rx: bool = False
    delay_before_tx_s: float | None = None
    delay_before_rx_s: float | None = None


def open_serial_port(url: str, *, baud: int, rs485: bool | Rs485Options = False,
                     exclusive: bool = True) -> PyserialPort:
    """Open `url` at `baud` 8N1, optionally in kernel RS-485 mode; raises a SerialPortError subclass."""
    import serial  # pyserial; imported here so that the module loads without it for listings

    # The read timeout is fixed here: changing it on an open pyserial port reapplies every setting
    # (termios, the lock, RS-485 mode; a settings exchange for rfc2217://), so reads poll instead.
    port = serial.serial_for_url(url, do_not_open=True, baudrate=baud, timeout=READ_POLL_S)
    if exclusive and url.startswith("/"):
        port.exclusive = True  # flock(LOCK_EX | LOCK_NB) on open
    if rs485:
        _set_rs485(port, url, rs485 if isinstance(rs485, Rs485Options) else Rs485Options())
    try:
        port.open()
    except ValueError as exc:  # pyserial reports a failed TIOCSRS485 as ValueError
        raise Rs485Unsupported(errno.ENOTTY, _rs485_message(url, exc)) from exc
    except (serial.SerialException, OSError) as exc:
        raise _translate_open_error(url, exc) from exc
    return PyserialPort(port, url=url, baud=baud)


def _set_rs485(port, url: str, options: Rs485Options) -> None:
    import serial.rs485

    try:
        port.rs485_mode = serial.rs485.RS485Settings(
            rts_level_for_tx=options.rts_level_for_tx, rts_level_for_rx=options.rts_level_for_rx,
            delay_before_tx=options.delay_before_tx_s, delay_before_rx=options.delay_before_rx_s)
    except (AttributeError, NotImplementedError, ValueError) as exc:  # socket://, loop:// have no such mode
        raise Rs485Unsupported(errno.ENOTTY, _rs485_message(url, exc)) from exc


def _rs485_message(url: str, exc: BaseException) -> str:
    return (f"{url!r} has no kernel RS-485 mode ({exc}); set rs485: false for a USB RS-485 adapter, a "
            f"pty or a network converter, which switch the line direction themselves")


def _translate_open_error(url: str, exc: BaseException) -> SerialPortError:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
        return PortBusy(errno.EBUSY, f"{url!r} is in use by another process (it holds the port's lock)")
    if code == errno.ENOENT or "No such file" in text:
        return PortNotFound(errno.ENOENT, f"no serial port {url!r}; `nvr devices` lists the ports there are")
    if code == errno.EACCES or "Permission denied" in text:
        return SerialPortError(errno.EACCES, f"no permission to open {url!r}; add the user to the dialout group")
    return SerialPortError(code or errno.EIO, f"cannot open serial port {url!r}: {text}")


class PyserialPort:
    """A pyserial port behind the SerialPort interface."""

    def __init__(self, port, *, url: str, baud: int):
        self._port, self.url, self.baud = port, url, baud
        self._closed = False

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except Exception as exc:  # pyserial raises SerialException, OSError or socket errors
            raise SerialPortError(getattr(exc, "errno", None) or errno.EIO,
                                  f"writing to {self.url!r} failed: {exc}") from exc

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        polls = max(1, math.ceil(timeout_s / READ_POLL_S))  # the port's own read timeout is the clock
        try:
            while not (first := self._port.read(1)):  # waits up to READ_POLL_S
                polls -= 1
                if polls <= 0:
                    return b""
            data = bytearray(first)
            while len(data) < max_bytes and (waiting := self._port.in_waiting):  # socket:// says 1 while any
                data += self._port.read(min(waiting, max_bytes - len(data)))
            return bytes(data)
        except Exception as exc:
            raise SerialPortError(getattr(exc, "errno", None) or errno.EIO,
                                  f"reading from {self.url!r} failed: {exc}") from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._port.close()


class SimulatedSerialPort:
    """One end of a `SimulatedSerialLine`; counts what it wrote."""

    def __init__(self, line: SimulatedSerialLine, side: int, *, url: str, baud: int):
        self._line, self._side, self.url, self.baud = line, side, url, baud
        self.bytes_written = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise SerialPortError(errno.EBADF, f"{self.url!r} is closed")
        self.bytes_written += len(data)
        self._line._push(1 - self._side, bytes(data))

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        return self._line._pop(self._side, max_bytes, timeout_s)

    def close(self) -> None:
        self.closed = True


class SimulatedSerialLine:
    """Two in-memory serial ports joined back to back: what `a` writes `b` reads, and the reverse."""

    def __init__(self, *, baud: int = 9600, url: str = "sim://line"):
        self._buffers = (bytearray(), bytearray())
        self._ready = threading.Condition()
        self.a = SimulatedSerialPort(self, 0, url=url + "#a", baud=baud)
        self.b = SimulatedSerialPort(self, 1, url=url + "#b", baud=baud)

    def _push(self, side: int, data: bytes) -> None:
        with self._ready:
            self._buffers[side].extend(data)
            self._ready.notify_all()

    def _pop(self, side: int, max_bytes: int, timeout_s: float) -> bytes:
        with self._ready:
            if not self._ready.wait_for(lambda: self._buffers[side], max(timeout_s, 0)):
                return b""
            data = bytes(self._buffers[side][:max_bytes])
            del self._buffers[side][:max_bytes]
            return data
