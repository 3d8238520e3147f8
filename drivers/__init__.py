"""What is on the other end of a wire: network cameras (rtsp/), Pelco-D/P PTZ domes (pelco/), alarm contacts and relays."""
