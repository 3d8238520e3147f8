"""The product: config, the running Appliance (recording supervisor, PTZ, alarms, monitor, web UI), the `nvr` command."""
