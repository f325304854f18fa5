"""Volumes: the volume service, the `local` driver, mount points of containers, copy-up."""
