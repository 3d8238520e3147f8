"""The box as an ONVIF device (Profile S subset) and its WS-Discovery answer: see design/rtsp-server.md."""
