"""Pelco-D/P PTZ domes on RS-485: the protocol, the bus worker, stream resync and a simulated dome."""
