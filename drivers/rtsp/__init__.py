"""Network cameras over RTSP: the protocol pieces (RTSP, SDP, RTP), our own client and FFmpeg's."""
