"""Networking: IPAM, drivers (bridge/host/null), netns, firewall, ports, embedded DNS."""
