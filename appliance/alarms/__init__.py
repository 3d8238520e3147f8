"""Alarm inputs and outputs, the appliance's own health as signals, linkage rules and webhooks."""
