"""The product: YAML config, the supervisor that wires channels, the web status page, the `nvr` command."""
