"""Pelco-D and Pelco-P PTZ protocols: pure encode/decode of single frames, with no I/O.

Both protocols carry the same four payload bytes after an address; they differ in framing and in the
bit layout of standard (motion) commands:

    Pelco-D  FF  addr  cmd1  cmd2  data1 data2  sum        sum = (addr+cmd1+cmd2+data1+data2) mod 256
    Pelco-P  A0  addr  data1 data2 data3 data4  AF  xor    xor = XOR of the seven bytes before it

A standard command has bit 0 of cmd2 (D) / data2 (P) clear and sets direction bits plus pan and tilt
speeds (0x00-0x3F; pan turbo is 0xFF in D, 0x40 in P). An extended command has that bit set: cmd2 is
an opcode (0x03 set preset, 0x05 clear preset, 0x07 go to preset, 0x09/0x0B aux on/off, 0x4B/0x4D/0x4F
set pan/tilt/zoom position, 0x51/0x53/0x55 query them, 0x59/0x5B/0x5D the dome's answers) and the two
data bytes are its argument. A Pelco-D dome may also send a 4-byte general response
``FF addr alarms sum``.

Messages are small frozen dataclasses (`Move`, `Preset`, `Aux`, `SetPosition`, `Query`,
`PositionReport`, `Ack`); `encode(protocol, address, message)` and `decode(protocol, frame)` convert.
`drivers.pelco.stream.FrameDecoder` finds frames in a byte stream.

Exceptions::

    PelcoError (ValueError)          bad input to encode or decode
     +-- ChecksumError               a frame whose checksum does not match its bytes
     +-- FrameError                  wrong length, sync/ETX byte, or a field out of range
          +-- UnsupportedCommand     a well-formed frame this module does not model (camera on/off,
                                     auto-scan, other extended opcodes)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

ProtocolName = Literal["pelco-d", "pelco-p"]
PROTOCOLS: tuple[ProtocolName, ...] = ("pelco-d", "pelco-p")
Axis = Literal["pan", "tilt", "zoom"]
PresetAction = Literal["set", "clear", "go"]

D_SYNC, P_STX, P_ETX = 0xFF, 0xA0, 0xAF
D_FRAME_BYTES, P_FRAME_BYTES, D_ACK_BYTES = 7, 8, 4
MAX_SPEED = 0x3F
D_TURBO, P_TURBO = 0xFF, 0x40
MAX_PRESET = 255
PAN_TILT_SCALE = 36000  # positions are hundredths of a degree, 0-35999
ZOOM_MAX = 0xFFFF       # zoom position 0 (wide) .. 65535 (full tele)


class PelcoError(ValueError):
    """Bad input to encode or decode."""


class ChecksumError(PelcoError):
    """A frame whose checksum byte does not match its other bytes."""


class FrameError(PelcoError):
    """Not a valid frame: wrong length, sync or ETX byte, or a field out of range."""


class UnsupportedCommand(FrameError):
    """A well-formed frame that this module does not model."""


# --- value checks ----------------------------------------------------------------------------------

def _check_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PelcoError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def _check_position(axis: str, value: object) -> None:
    if axis not in _QUERY_OPCODES:
        raise PelcoError(f"axis must be pan, tilt or zoom, got {axis!r}")
    _check_range(f"{axis} position", value, 0, ZOOM_MAX if axis == "zoom" else PAN_TILT_SCALE - 1)


# --- messages ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Move:
    """Continuous motion until the next command; all fields zero is Stop.

    Directions are -1, 0 or +1: pan -1 left / +1 right, tilt -1 down / +1 up, zoom -1 wide (out) /
    +1 tele (in), focus -1 near / +1 far, iris -1 close / +1 open. Speeds are 0-63 and are sent as
    given even with no pan/tilt direction (some controllers do). `turbo` is the pan turbo speed.
    """

    pan: int = 0
    tilt: int = 0
    pan_speed: int = 0
    tilt_speed: int = 0
    turbo: bool = False
    zoom: int = 0
    focus: int = 0
    iris: int = 0

    def __post_init__(self) -> None:
        for name in ("pan", "tilt", "zoom", "focus", "iris"):
            if getattr(self, name) not in (-1, 0, 1):
                raise PelcoError(f"{name} direction must be -1, 0 or 1, got {getattr(self, name)!r}")
        for name in ("pan_speed", "tilt_speed"):
            _check_range(name, getattr(self, name), 0, MAX_SPEED)

    @property
    def is_stop(self) -> bool:
        """True if nothing moves (speeds aside)."""
        return not (self.pan or self.tilt or self.zoom or self.focus or self.iris)


STOP = Move()


@dataclass(frozen=True)
class Preset:
    """Store (`set`), forget (`clear`) or go to (`go`) preset `number` (1-255)."""

    action: PresetAction
    number: int

    def __post_init__(self) -> None:
        if self.action not in _PRESET_OPCODES:
            raise PelcoError(f"preset action must be set, clear or go, got {self.action!r}")
        _check_range("preset number", self.number, 1, MAX_PRESET)


@dataclass(frozen=True)
class Aux:
    """Switch the dome's auxiliary output `number` (1-8: wiper, light, relay) on or off."""

    on: bool
    number: int

    def __post_init__(self) -> None:
        _check_range("aux number", self.number, 1, 8)


@dataclass(frozen=True)
class SetPosition:
    """Go to an absolute position: pan/tilt in hundredths of a degree (0-35999), zoom 0-65535."""

    axis: Axis
    value: int

    def __post_init__(self) -> None:
        _check_position(self.axis, self.value)


@dataclass(frozen=True)
class Query:
    """Ask the dome for its current pan, tilt or zoom position (it answers with a PositionReport)."""

    axis: Axis

    def __post_init__(self) -> None:
        if self.axis not in _QUERY_OPCODES:
            raise PelcoError(f"axis must be pan, tilt or zoom, got {self.axis!r}")


@dataclass(frozen=True)
class PositionReport:
    """The dome's answer to a Query: pan/tilt in hundredths of a degree (0-35999), zoom 0-65535."""

    axis: Axis
    value: int

    def __post_init__(self) -> None:
        _check_position(self.axis, self.value)


@dataclass(frozen=True)
class Ack:
    """Pelco-D general response (4 bytes) that some domes send after each command; `alarms` bits."""

    faults: int = 0


Message = Union[Move, Preset, Aux, SetPosition, Query, PositionReport, Ack]


@dataclass(frozen=True)
class Frame:
    """One decoded frame: who it is addressed to (or from), what it says, and its bytes."""

    protocol: ProtocolName
    address: int
    message: Message
    raw: bytes


# --- checksums --------------------------------------------------------------------------------

def checksum_d(frame: bytes) -> int:
    """Pelco-D checksum of a 7-byte frame (or its first 6 bytes): sum of bytes 2-6 modulo 256."""
    return sum(frame[1:6]) & 0xFF


def checksum_p(frame: bytes) -> int:
    """Pelco-P checksum of an 8-byte frame (or its first 7 bytes): XOR of bytes 1-7, STX and ETX included."""
    value = 0
    for byte in frame[:7]:
        value ^= byte
    return value


# --- encoding ---------------------------------------------------------------------------------

_PRESET_OPCODES = {"set": 0x03, "clear": 0x05, "go": 0x07}
_AUX_OPCODES = {True: 0x09, False: 0x0B}
_SET_POSITION_OPCODES = {"pan": 0x4B, "tilt": 0x4D, "zoom": 0x4F}
_QUERY_OPCODES = {"pan": 0x51, "tilt": 0x53, "zoom": 0x55}
_REPORT_OPCODES = {"pan": 0x59, "tilt": 0x5B, "zoom": 0x5D}

# (first byte, second byte) bit for each direction; D and P differ only in the first byte's layout.
_D_BITS = {("focus", -1): (0x01, 0), ("iris", 1): (0x02, 0), ("iris", -1): (0x04, 0), ("focus", 1): (0, 0x80),
           ("zoom", -1): (0, 0x40), ("zoom", 1): (0, 0x20), ("tilt", -1): (0, 0x10), ("tilt", 1): (0, 0x08),
           ("pan", -1): (0, 0x04), ("pan", 1): (0, 0x02)}
_P_BITS = {**_D_BITS, ("focus", 1): (0x01, 0), ("focus", -1): (0x02, 0), ("iris", 1): (0x04, 0),
           ("iris", -1): (0x08, 0)}
_DIRECTIONS = ("pan", "tilt", "zoom", "focus", "iris")


def encode(protocol: ProtocolName, address: int, message: Message) -> bytes:
    """The complete frame that sends `message` to (or, for replies, from) the dome at `address` (0-255)."""
    _check_range("address", address, 0, 255)
    if isinstance(message, Ack):
        if protocol != "pelco-d":
            raise PelcoError("only Pelco-D has a general response")
        _check_range("alarms", message.faults, 0, 255)
        return bytes([D_SYNC, address, message.faults, (address + message.faults) & 0xFF])
    return _frame(protocol, address, _payload(protocol, message))


def _payload(protocol: ProtocolName, message: Message) -> tuple[int, int, int, int]:
    if isinstance(message, Move):
        return _move_payload(protocol, message)
    if isinstance(message, Preset):
        return (0, _PRESET_OPCODES[message.action], 0, message.number)
    if isinstance(message, Aux):
        return (0, _AUX_OPCODES[message.on], 0, message.number)
    if isinstance(message, SetPosition):
        return (0, _SET_POSITION_OPCODES[message.axis], message.value >> 8, message.value & 0xFF)
    if isinstance(message, Query):
        return (0, _QUERY_OPCODES[message.axis], 0, 0)
    if isinstance(message, PositionReport):
        return (0, _REPORT_OPCODES[message.axis], message.value >> 8, message.value & 0xFF)
    raise PelcoError(f"not a Pelco message: {message!r}")


def _move_payload(protocol: ProtocolName, move: Move) -> tuple[int, int, int, int]:
    bits = _D_BITS if protocol == "pelco-d" else _P_BITS
    first = second = 0
    for name in _DIRECTIONS:
        direction = getattr(move, name)
        if direction:
            first |= bits[(name, direction)][0]
            second |= bits[(name, direction)][1]
    turbo = D_TURBO if protocol == "pelco-d" else P_TURBO
    return (first, second, turbo if move.turbo else move.pan_speed, move.tilt_speed)


def _frame(protocol: ProtocolName, address: int, payload: tuple[int, int, int, int]) -> bytes:
    if protocol == "pelco-d":
        body = bytes([D_SYNC, address, *payload])
        return body + bytes([checksum_d(body)])
    if protocol == "pelco-p":
        body = bytes([P_STX, address, *payload, P_ETX])
        return body + bytes([checksum_p(body)])
    raise PelcoError(f"protocol must be pelco-d or pelco-p, got {protocol!r}")


# --- decoding ---------------------------------------------------------------------------------

def decode(protocol: ProtocolName, frame: bytes) -> Frame:
    """Decode one complete frame (a Pelco-D 7-byte command/report or 4-byte ack, a Pelco-P 8-byte frame).

    Raises ChecksumError, FrameError or UnsupportedCommand; never returns a partly trusted frame.
    """
    frame = bytes(frame)
    if protocol == "pelco-d":
        return _decode_d(frame)
    if protocol == "pelco-p":
        return _decode_p(frame)
    raise PelcoError(f"protocol must be pelco-d or pelco-p, got {protocol!r}")


def _decode_d(frame: bytes) -> Frame:
    if len(frame) == D_ACK_BYTES and frame[0] == D_SYNC:
        if (frame[1] + frame[2]) & 0xFF != frame[3]:
            raise ChecksumError(f"Pelco-D response {frame.hex(' ')}: checksum {frame[3]:#04x}, "
                                f"expected {(frame[1] + frame[2]) & 0xFF:#04x}")
        return Frame("pelco-d", frame[1], Ack(frame[2]), frame)
    if len(frame) != D_FRAME_BYTES or frame[0] != D_SYNC:
        raise FrameError(f"expected 7 bytes starting with FF for Pelco-D, got {frame.hex(' ')!r}")
    if checksum_d(frame) != frame[6]:
        raise ChecksumError(f"Pelco-D frame {frame.hex(' ')}: checksum {frame[6]:#04x}, "
                            f"expected {checksum_d(frame):#04x}")
    return Frame("pelco-d", frame[1], _message("pelco-d", frame[2:6]), frame)


def _decode_p(frame: bytes) -> Frame:
    if len(frame) != P_FRAME_BYTES or frame[0] != P_STX or frame[6] != P_ETX:
        raise FrameError(f"expected 8 bytes A0 .. .. .. .. .. AF .. for Pelco-P, got {frame.hex(' ')!r}")
    if checksum_p(frame) != frame[7]:
        raise ChecksumError(f"Pelco-P frame {frame.hex(' ')}: checksum {frame[7]:#04x}, "
                            f"expected {checksum_p(frame):#04x}")
    return Frame("pelco-p", frame[1], _message("pelco-p", frame[2:6]), frame)


def _message(protocol: ProtocolName, payload: bytes) -> Message:
    first, second, data1, data2 = payload
    if second & 0x01:
        return _extended(first, second, data1, data2)
    return _move(protocol, first, second, data1, data2)


def _extended(first: int, opcode: int, data1: int, data2: int) -> Message:
    if first != 0:
        raise UnsupportedCommand(f"extended command {opcode:#04x} with first command byte {first:#04x}")
    value = data1 << 8 | data2
    for table, make in ((_PRESET_OPCODES, lambda key: Preset(key, _arg(data1, data2, key))),
                        (_AUX_OPCODES, lambda key: Aux(key, _arg(data1, data2, "aux"))),
                        (_SET_POSITION_OPCODES, lambda key: SetPosition(key, _position(key, value))),
                        (_QUERY_OPCODES, lambda key: Query(key)),
                        (_REPORT_OPCODES, lambda key: PositionReport(key, _position(key, value)))):
        for key, code in table.items():
            if code == opcode:
                try:
                    return make(key)
                except FrameError:
                    raise
                except PelcoError as exc:  # a field the message type refuses (aux 9): the frame is invalid
                    raise FrameError(f"extended command {opcode:#04x}: {exc}") from None
    raise UnsupportedCommand(f"extended command {opcode:#04x} is not supported")


def _arg(data1: int, data2: int, what: object) -> int:
    if data1 != 0 or data2 == 0:
        raise FrameError(f"{what}: expected 00 and a number from 1 to 255, got {data1:02x} {data2:02x}")
    return data2


def _position(axis: Axis, value: int) -> int:
    try:
        _check_position(axis, value)
    except PelcoError as exc:
        raise FrameError(str(exc)) from None
    return value


def _move(protocol: ProtocolName, first: int, second: int, data1: int, data2: int) -> Move:
    bits = _D_BITS if protocol == "pelco-d" else _P_BITS
    known_first = known_second = 0
    directions = {}
    for (name, direction), (bit1, bit2) in bits.items():
        known_first |= bit1
        known_second |= bit2
        if (first & bit1 if bit1 else second & bit2):
            if directions.get(name):
                raise FrameError(f"{name} in both directions at once ({first:02x} {second:02x})")
            directions[name] = direction
    if first & ~known_first or second & ~known_second:
        raise UnsupportedCommand(f"standard command bits {first:02x} {second:02x} (camera on/off, "
                                 f"auto-scan) are not supported")
    if data2 > MAX_SPEED:
        raise FrameError(f"tilt speed {data2:#04x} is above {MAX_SPEED:#04x}")
    turbo = data1 > MAX_SPEED  # D's turbo is FF and P's 40; some D controllers send 40 too
    return Move(**directions, pan_speed=MAX_SPEED if turbo else data1, tilt_speed=data2, turbo=turbo)


def degrees_to_wire(degrees: float) -> int:
    """A pan or tilt angle in degrees as Pelco sends it: hundredths of a degree modulo 360 (-10 -> 35000)."""
    return round(degrees * 100) % PAN_TILT_SCALE


def wire_to_degrees(value: int, *, signed: bool = False) -> float:
    """Hundredths of a degree -> degrees, 0 to <360; `signed` maps above 180 to negative (tilt)."""
    degrees = value / 100
    return degrees - 360 if signed and degrees > 180 else degrees
