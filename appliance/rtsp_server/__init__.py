"""The box as an RTSP source: GStreamer's RTSP server in a helper process, fed from the live taps."""
