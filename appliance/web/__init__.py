"""The web UI and REST API: the server, authentication and users, and the routes by area."""
