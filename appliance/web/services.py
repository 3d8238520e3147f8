"""The appliance's PTZ and alarm-I/O services seen through what the web routes need
(`appliance.web.views.WebPtzControl` and `AlarmPanel`).

The web speaks in browser terms (speeds -1..1, outputs on/off); `PtzService` speaks Pelco terms
(directions and 0-63 speeds, Futures) and `AlarmIO` in relays and contacts. These adapters are the one
place that translates, so neither side bends to the other.
"""
from __future__ import annotations

from appliance.alarms.io import AlarmIO
from appliance.ptz.service import PtzService
from appliance.web.views import AlarmPanel, WebPtzControl

MAX_SPEED = 63
COMMAND_TIMEOUT_S = 2.0  # a frame queued behind a busy bus; the bus worker paces, the browser waits


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def web_ptz(service: PtzService | WebPtzControl | None) -> WebPtzControl | None:
    """The PTZ service as the routes need it; None when there is none or no channel has a dome."""
    if service is None or isinstance(service, WebPtzControl):
        return service
    return WebPtz(service) if service.channels() else None


def alarm_panel(io: AlarmIO | AlarmPanel | None) -> AlarmPanel | None:
    """The alarm I/O as the routes need it; None when there is none or it has no pins configured."""
    if io is None or isinstance(io, AlarmPanel):
        return io
    return WebAlarmPanel(io) if io.contacts or io.relays else None


class WebPtz:
    """`WebPtzControl` over `PtzService`. Commands wait until the frame is on the wire, so a
    failing bus answers the request with an error instead of failing silently later."""

    def __init__(self, service: PtzService):
        self._service = service

    def has_channel(self, channel: int) -> bool:
        return channel in self._service.channels()

    def move(self, channel: int, *, pan: float, tilt: float) -> None:
        speed = max(1, round(max(abs(pan), abs(tilt)) * MAX_SPEED))
        self._wait(self._service.move(channel, _sign(pan), _sign(tilt), speed))

    def zoom(self, channel: int, *, speed: float) -> None:
        self._wait(self._service.zoom(channel, _sign(speed)) if speed else self._service.stop(channel))

    def stop(self, channel: int) -> None:
        self._wait(self._service.stop(channel))

    def goto_preset(self, channel: int, preset: int) -> None:
        self._wait(self._service.preset_go(channel, preset))

    def set_preset(self, channel: int, preset: int) -> None:
        self._wait(self._service.preset_set(channel, preset))

    def state(self, channel: int) -> dict:
        return {"tour": self._service.tour_running(channel), "tours": self._service.tours(channel)}

    @staticmethod
    def _wait(future) -> None:
        """Wait for the command; every failure comes out as OSError or ValueError (what the routes answer
        with 502), an ONVIF camera's own (a SOAP fault, no such preset, busy) included."""
        try:
            future.result(timeout=COMMAND_TIMEOUT_S)
        except TimeoutError as exc:
            raise OSError(f"the command was not carried out within {COMMAND_TIMEOUT_S:g} s (the RS-485 bus "
                          f"is busy or the camera does not answer): {exc}") from exc
        except (OSError, ValueError):
            raise
        except Exception as exc:  # an ONVIF camera's refusal, translated at this seam
            raise OSError(f"the camera refused the command: {exc}") from exc


class WebAlarmPanel:
    """`AlarmPanel` over `AlarmIO`: contacts as inputs, relays as outputs."""

    def __init__(self, alarm_io: AlarmIO):
        self._io = alarm_io

    def inputs(self) -> list[dict]:
        return [contact.statistics() for contact in self._io.contacts.values()]

    def outputs(self) -> list[dict]:
        return [{**relay.statistics(), "on": relay.is_active} for relay in self._io.relays.values()]

    def set_output(self, output_id: str, on: bool) -> None:
        self._io.trigger_output(output_id) if on else self._io.clear_output(output_id)
