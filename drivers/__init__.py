"""What is on the other end of a wire: network cameras (RTSP), later PTZ domes and alarm contacts."""
