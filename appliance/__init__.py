"""The product: config, the supervisor that wires channels, the web UI, the HDMI monitor, alarms and rules, PTZ, the `nvr` command."""
