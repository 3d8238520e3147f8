"""`OnvifPtz`: steering one ONVIF camera's PTZ (ONVIF PTZ service, ver20) for one media profile.

Takes an `onvif.ONVIFCamera` after `update_xaddrs()` and the token of a media profile that carries a
PTZConfiguration. `open()` reads the profile and `GetConfigurationOptions` once, into `PtzCapabilities`:
which moves the configuration offers (continuous pan/tilt, continuous zoom, relative moves), how many
presets the node keeps, whether it has a home position. Velocities are normalized, -1.0 to 1.0, as the
ONVIF generic spaces are; a command outside what the camera offers raises `PtzUnsupported` before any
request is sent.

Presets are the camera's own: tokens chosen by the camera (Hikvision "1", "2"..., Axis "1"... or
names). `preset_token(number)` maps an appliance preset number (1-255, as for a Pelco dome) onto them:
the preset whose token is that number, else the one whose name is that number.

Exceptions::

    OnvifPtzError (RuntimeError)
     +-- PtzUnsupported (also NotImplementedError)  the camera's PTZ configuration does not offer this
     +-- NoSuchPreset (also LookupError)            no camera preset for that number or token
    onvif.exceptions.ONVIFError, zeep Fault, aiohttp.ClientError, TimeoutError   from the camera
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("nvr.onvif.ptz")

MAX_PRESETS = 512  # presets read from one GetPresets; a camera listing more is cut here
MAX_NAME_CHARS = 64  # ONVIF Name: a preset name longer than this is refused before it is sent
STOP_TIMEOUT = "PT60S"  # ContinuousMove Timeout: a camera stops by itself if our Stop never arrives


class OnvifPtzError(RuntimeError):
    """Base of this module's own errors."""


class PtzUnsupported(OnvifPtzError, NotImplementedError):
    """The camera's PTZ configuration does not offer this move."""


class NoSuchPreset(OnvifPtzError, LookupError):
    """The camera has no preset for that number or token."""


@dataclass(frozen=True)
class PtzCapabilities:
    """What one profile's PTZ configuration offers, as read at `open()`."""

    profile: str
    configuration: str
    node: str | None
    continuous_pan_tilt: bool
    continuous_zoom: bool
    relative_pan_tilt: bool
    relative_zoom: bool
    absolute: bool
    max_presets: int | None
    home: bool


@dataclass(frozen=True)
class OnvifPreset:
    token: str
    name: str


def _clamp(value: float) -> float:
    return max(-1.0, min(1.0, float(value)))


def _spaces(options, kind: str) -> tuple[bool, bool]:
    """(pan/tilt, zoom) offered for `kind` ('Continuous', 'Relative', 'Absolute') by GetConfigurationOptions."""
    spaces = getattr(options, "Spaces", None)
    if spaces is None:
        return False, False
    pan_tilt = getattr(spaces, f"{kind}PanTiltVelocitySpace" if kind == "Continuous"
                       else f"{kind}PanTiltTranslationSpace" if kind == "Relative"
                       else f"{kind}PanTiltPositionSpace", None)
    zoom = getattr(spaces, f"{kind}ZoomVelocitySpace" if kind == "Continuous"
                   else f"{kind}ZoomTranslationSpace" if kind == "Relative"
                   else f"{kind}ZoomPositionSpace", None)
    return bool(pan_tilt), bool(zoom)


class OnvifPtz:
    """PTZ of one camera profile. Coroutines; run them on the appliance's ONVIF loop thread."""

    def __init__(self, camera, profile: str | None = None):
        """`profile`: a media profile token; None takes the first profile with a PTZ configuration."""
        self._camera, self._profile = camera, profile
        self._ptz = None
        self.capabilities: PtzCapabilities | None = None

    async def open(self) -> PtzCapabilities:
        """Find the profile, its PTZ configuration and what that offers; PtzUnsupported if it has none."""
        media = await self._camera.create_media_service()
        profiles = await media.GetProfiles()
        profile = next((p for p in profiles or [] if getattr(p, "PTZConfiguration", None) is not None
                        and (self._profile is None or p.token == self._profile)), None)
        if profile is None:
            tokens = ", ".join(str(getattr(p, "token", "?")) for p in (profiles or [])[:16]) or "none"
            wanted = f"profile {self._profile!r}" if self._profile else "any profile"
            raise PtzUnsupported(f"the camera has no PTZ configuration on {wanted} (profiles: {tokens})")
        self._ptz = await self._camera.create_ptz_service()
        configuration = profile.PTZConfiguration
        options = None
        try:
            options = await self._ptz.GetConfigurationOptions({"ConfigurationToken": configuration.token})
        except Exception as exc:  # some cameras answer only GetConfiguration: judge by the configuration then
            log.info("camera PTZ: GetConfigurationOptions failed (%s); using the configuration's defaults", exc)
        self.capabilities = self._capabilities(profile.token, configuration, options)
        return self.capabilities

    def _capabilities(self, profile: str, configuration, options) -> PtzCapabilities:
        if options is not None:
            cont_pt, cont_zoom = _spaces(options, "Continuous")
            rel_pt, rel_zoom = _spaces(options, "Relative")
            abs_pt, abs_zoom = _spaces(options, "Absolute")
        else:  # the configuration names default spaces for what it supports
            cont_pt = bool(getattr(configuration, "DefaultContinuousPanTiltVelocitySpace", None))
            cont_zoom = bool(getattr(configuration, "DefaultContinuousZoomVelocitySpace", None))
            rel_pt = bool(getattr(configuration, "DefaultRelativePanTiltTranslationSpace", None))
            rel_zoom = bool(getattr(configuration, "DefaultRelativeZoomTranslationSpace", None))
            abs_pt = bool(getattr(configuration, "DefaultAbsolutePantTiltPositionSpace", None))
            abs_zoom = bool(getattr(configuration, "DefaultAbsoluteZoomPositionSpace", None))
        return PtzCapabilities(profile=profile, configuration=configuration.token,
                               node=getattr(configuration, "NodeToken", None), continuous_pan_tilt=cont_pt,
                               continuous_zoom=cont_zoom, relative_pan_tilt=rel_pt, relative_zoom=rel_zoom,
                               absolute=abs_pt or abs_zoom, max_presets=None, home=True)

    def _caps(self) -> PtzCapabilities:
        if self.capabilities is None or self._ptz is None:
            raise OnvifPtzError("call open() before steering the camera")
        return self.capabilities

    # --- moves ---------------------------------------------------------------------------------------

    async def continuous_move(self, *, pan: float = 0.0, tilt: float = 0.0, zoom: float = 0.0) -> None:
        """Move at these normalized velocities (-1.0 to 1.0; pan + right, tilt + up, zoom + in) until Stop."""
        caps = self._caps()
        if (pan or tilt) and not caps.continuous_pan_tilt:
            raise PtzUnsupported("the camera's PTZ configuration offers no continuous pan/tilt")
        if zoom and not caps.continuous_zoom:
            raise PtzUnsupported("the camera's PTZ configuration offers no continuous zoom")
        velocity = {}
        if caps.continuous_pan_tilt:
            velocity["PanTilt"] = {"x": _clamp(pan), "y": _clamp(tilt)}
        if caps.continuous_zoom:
            velocity["Zoom"] = {"x": _clamp(zoom)}
        await self._ptz.ContinuousMove({"ProfileToken": caps.profile, "Velocity": velocity, "Timeout": STOP_TIMEOUT})

    async def stop(self, *, pan_tilt: bool = True, zoom: bool = True) -> None:
        """Stop pan/tilt and zoom movement."""
        caps = self._caps()
        await self._ptz.Stop({"ProfileToken": caps.profile, "PanTilt": pan_tilt, "Zoom": zoom})

    async def relative_move(self, *, pan: float = 0.0, tilt: float = 0.0, zoom: float = 0.0) -> None:
        """Move by a normalized step (-1.0 to 1.0 of the camera's translation range), where offered."""
        caps = self._caps()
        if ((pan or tilt) and not caps.relative_pan_tilt) or (zoom and not caps.relative_zoom):
            raise PtzUnsupported("the camera's PTZ configuration offers no relative move for that axis")
        translation = {}
        if pan or tilt:
            translation["PanTilt"] = {"x": _clamp(pan), "y": _clamp(tilt)}
        if zoom:
            translation["Zoom"] = {"x": _clamp(zoom)}
        await self._ptz.RelativeMove({"ProfileToken": caps.profile, "Translation": translation})

    async def goto_home(self) -> None:
        """Go to the home position."""
        await self._ptz.GotoHomePosition({"ProfileToken": self._caps().profile})

    async def set_home(self) -> None:
        """Store the current position as the home position."""
        await self._ptz.SetHomePosition({"ProfileToken": self._caps().profile})

    # --- presets -------------------------------------------------------------------------------------

    async def presets(self) -> list[OnvifPreset]:
        """The camera's presets (at most MAX_PRESETS), in its order."""
        found = await self._ptz.GetPresets({"ProfileToken": self._caps().profile}) or []
        presets = []
        for preset in found[:MAX_PRESETS]:
            token = getattr(preset, "token", None)
            if isinstance(token, str) and 0 < len(token) <= MAX_NAME_CHARS:
                name = getattr(preset, "Name", None)
                presets.append(OnvifPreset(token, name[:MAX_NAME_CHARS] if isinstance(name, str) else ""))
        return presets

    async def preset_token(self, number: int) -> str:
        """The token of the camera's preset for appliance preset `number`: token == number, else name == number."""
        presets = await self.presets()
        wanted = str(number)
        for match in (lambda p: p.token == wanted, lambda p: p.name.strip() == wanted):
            found = next((p for p in presets if match(p)), None)
            if found is not None:
                return found.token
        listed = ", ".join(f"{p.token!r} ({p.name})" for p in presets[:20]) or "none"
        raise NoSuchPreset(f"the camera has no preset {number} (its presets: {listed}); store it first")

    async def goto_preset(self, token: str) -> None:
        await self._ptz.GotoPreset({"ProfileToken": self._caps().profile, "PresetToken": token})

    async def set_preset(self, *, name: str, token: str | None = None) -> str:
        """Store the current position: over preset `token`, or as a new preset named `name` (the camera
        chooses the token). Returns the preset's token."""
        if not 0 < len(name) <= MAX_NAME_CHARS:
            raise ValueError(f"a preset name has 1 to {MAX_NAME_CHARS} characters, got {name!r}")
        request = {"ProfileToken": self._caps().profile, "PresetName": name}
        if token is not None:
            request["PresetToken"] = token
        answer = await self._ptz.SetPreset(request)
        return answer if isinstance(answer, str) and answer else (token or name)

    async def remove_preset(self, token: str) -> None:
        await self._ptz.RemovePreset({"ProfileToken": self._caps().profile, "PresetToken": token})

    # --- numbers, as the appliance speaks ------------------------------------------------------------

    async def goto_preset_number(self, number: int) -> None:
        await self.goto_preset(await self.preset_token(number))

    async def set_preset_number(self, number: int) -> str:
        """Store the current position as appliance preset `number`: over the camera's preset for it if
        there is one, else as a new preset with the token (and name) `number`."""
        try:
            token = await self.preset_token(number)
        except NoSuchPreset:
            token = None
        if token is not None:
            return await self.set_preset(name=str(number), token=token)
        try:
            return await self.set_preset(name=str(number), token=str(number))
        except Exception as exc:  # cameras that choose every token themselves refuse one from us
            log.info("camera PTZ: SetPreset with token %d refused (%s); letting the camera choose", number, exc)
            return await self.set_preset(name=str(number))

    async def remove_preset_number(self, number: int) -> None:
        await self.remove_preset(await self.preset_token(number))
