"""PTZ for the appliance: channels -> domes, for the web UI, rules and the `nvr ptz` command."""
